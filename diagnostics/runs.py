"""Where runs go: ``--out`` names a folder of runs for every command, and each run gets
its own new directory in it (``OUT/<YYYYmmdd-HHMMSS>/``), so no run ever overwrites
another and `reports/latest` can point at the newest.
"""

from __future__ import annotations

import time
from pathlib import Path

DEFAULT_RUNS = Path("reports/runs")


def new_run_dir(runs_root: Path) -> Path:
    """runs_root/<YYYYmmdd-HHMMSS>, with a suffix if two runs start in the same second."""
    runs_root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        candidate = runs_root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"too many runs named {stamp} in {runs_root}")
