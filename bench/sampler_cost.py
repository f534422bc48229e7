"""Section 2: what one sample costs at 0, 500 and 2000 zombies, next to psutil.

The measuring is bench.sampler_levels's; this only runs its levels and keeps
the rows. It makes zombies on purpose, so it checks the PID headroom first.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.loadgen import Locust, Wrk
from bench.sampler_levels import BUDGET_MS, MAX_ZOMBIES
from bench.sampler_levels import measure as measure_level
from bench.settings import BenchSettings
from diagnostics.machine import pid_headroom

SPARE_PIDS = 500
"""PIDs left to the rest of the machine on top of the zombies held."""


def check_levels(levels: tuple[int, ...]) -> None:
    """ValueError (one line) for a level the bench must not hold."""
    if any(not 0 <= level <= MAX_ZOMBIES for level in levels):
        raise ValueError(f"zombie levels must be 0 to {MAX_ZOMBIES}")


def measure(
    settings: BenchSettings, _generator: Wrk | Locust, _scratch: Path, out: dict[str, Any]
) -> None:
    """Fill ``out`` level by level; skip (and say why) when PIDs are short."""
    levels, rounds = settings.zombies, settings.sampler_rounds
    out.update(budget_ms=BUDGET_MS, levels=[])
    headroom = pid_headroom()
    if headroom < max(levels) + SPARE_PIDS:
        out["skipped"] = f"only {headroom} PIDs free: not making {max(levels)} zombies"
        return
    for level in levels:
        out["levels"].append(asdict(measure_level(level, rounds)))
    top = max(out["levels"], key=lambda row: row["zombies"])
    out["within_budget"] = top["ours_ms"] <= BUDGET_MS
