"""Where runs go: ``--out`` names a folder of runs for every command, and each run gets
its own new entry in it named by when it started (``OUT/<YYYYmmdd-HHMMSS>/`` for a run
directory, ``<YYYYmmdd-HHMMSS>.json`` for a bench record), so no run ever overwrites
another and `reports/latest` can point at the newest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_RUNS = Path("reports/runs")


def new_run_dir(runs_root: Path) -> Path:
    """runs_root/<YYYYmmdd-HHMMSS>/, made empty for this run."""
    return _claim(runs_root, "", Path.mkdir)


def new_run_file(folder: Path, suffix: str) -> Path:
    """folder/<YYYYmmdd-HHMMSS><suffix>, made empty for this run."""
    return _claim(folder, suffix, lambda path: path.touch(exist_ok=False))


def _claim(folder: Path, suffix: str, create: Callable[[Path], None]) -> Path:
    """The first free name of this second, created at once so that no other run takes it:
    a suffix -2, -3... when two runs start in the same second."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        candidate = folder / (f"{stamp}{suffix}" if n == 1 else f"{stamp}-{n}{suffix}")
        try:
            create(candidate)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"too many runs named {stamp} in {folder}")
