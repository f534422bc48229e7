"""The `latest` symlink beside the runs folder (reports/latest -> runs/<id>), so `make report`
and a person's bookmark always find the newest run while older runs are kept.

Only a run with something to show moves it: a run that failed before it gathered a
single sample would otherwise replace the last useful report with an empty one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def point_latest(runs_root: Path, run_dir: Path) -> Path:
    """Point `<parent of runs_root>/latest` at `run_dir`; return the link's path.

    For the default layout, runs_root is reports/runs and the link is reports/latest. The
    target is relative, so the checkout can move. The new link is made under a temporary
    name and renamed over the old one: rename is atomic, so a reader never sees the link
    missing or half-made, and a concurrent run simply wins or loses the race whole.
    """
    link = runs_root.parent / "latest"
    target = os.path.relpath(run_dir.resolve(), link.parent.resolve())
    temporary = link.with_name(f".latest.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    try:
        os.replace(temporary, link)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    return link


def has_data(summary: dict[str, Any]) -> bool:
    """Whether a report shows anything measured: some scenario has a zombie count."""
    return any(row.get("peak_zombies") is not None for row in summary.get("scenarios", []))
