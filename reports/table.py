"""The summary table's columns, shared by summary.md and index.html so both show the same figures.

Cells are plain text; each output format escapes them its own way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from reports.wording import duration

NOT_MEASURED = "—"


def figure(value: Any) -> str:
    """A figure as a person reads it: 2000, 98.5, yes/no, or a dash when not measured."""
    if value is None:
        return NOT_MEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.1f}"
    return str(value)


def figures(*values: Any) -> str:
    return " / ".join(figure(value) for value in values)


def mib(value: Any) -> str:
    return NOT_MEASURED if value is None else f"{value / 2**20:.1f} MiB"


def when(unix: Any) -> str:
    """A unix time as local date and time, or a dash (also for a run that never ended)."""
    if not isinstance(unix, int | float) or isinstance(unix, bool):
        return NOT_MEASURED
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix))
    except (OverflowError, OSError, ValueError):
        return NOT_MEASURED


def parameter(value: Any) -> str:
    """A run parameter as given (0.05 stays 0.05): a command line joined by spaces, null a dash,
    a group of settings (the expectations) as its settings that have a value, in parentheses."""
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    if isinstance(value, dict):
        given = (
            f"{key} {parameter(item)}" for key, item in value.items() if item not in (None, [])
        )
        return "(" + ", ".join(given) + ")"
    return NOT_MEASURED if value is None else str(value)


def zombies(scenario: dict[str, Any]) -> str:
    """The server's own zombies, and those held deeper in its tree when there were any."""
    own = figures(scenario["peak_zombies"], scenario["final_zombies"])
    if not scenario.get("peak_descendant_zombies"):
        return own
    deeper = figures(scenario["peak_descendant_zombies"], scenario["final_descendant_zombies"])
    return f"{own} (+ {deeper} deeper)"


def lifetime_line(scenario: dict[str, Any]) -> str | None:
    """How long its children stayed zombies, from summary.json's ``zombie_lifetime``:
    "1,963 exited: p50 0.15 ms, p99 1.4 ms, max 4.3 ms; 0 not reaped when judged (exact)"; None
    without an event record."""
    life = scenario.get("zombie_lifetime")
    if not isinstance(life, dict) or not isinstance(life.get("exited"), int):
        return None
    parts = [f"{life['exited']:,} exited"]
    timed = [
        f"{name} {_ms(value)}"
        for name, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("max", "max_ms"))
        if isinstance(value := life.get(key), int | float)
    ]
    if timed:
        parts[0] += ": " + ", ".join(timed)
    if life.get("bounded"):
        bound = life.get("bounded_max_ms")
        within = f" (within {_ms(bound)})" if isinstance(bound, int | float) else ""
        parts.append(f"{life['bounded']:,} reaped too soon to be timed{within}")
    parts.append(f"{life.get('never_reaped', 0):,} not reaped when judged")
    events = scenario.get("events") or {}
    sampled = events.get("sampled") if isinstance(events, dict) else None
    how = f"sampled: {', '.join(sampled)}" if sampled else "exact"
    return "; ".join(parts) + f" ({how})"


def _ms(value: float) -> str:
    return duration(value / 1000)


Column = tuple[str, Callable[[dict[str, Any]], str]]

COLUMNS: tuple[Column, ...] = (
    ("scenario", lambda s: str(s["name"])),
    ("strategy", lambda s: figure(s["strategy"])),
    ("requests", lambda s: figure(s["requests"])),
    ("failures", lambda s: figure(s["failures"])),
    ("req/s", lambda s: figure(s["rps"])),
    ("p50 / p95 / p99 ms", lambda s: figures(s["p50_ms"], s["p95_ms"], s["p99_ms"])),
    ("zombies peak / final", lambda s: zombies(s)),
    ("peak live", lambda s: figure(s["peak_alive"])),
    ("fds start → end", lambda s: f"{figure(s['fds_start'])} → {figure(s['fds_end'])}"),
    ("forked / reaped", lambda s: figures(s["forked"], s["reaped"])),
    ("status", lambda s: figure(s["status"])),
)
HEADERS = tuple(header for header, _ in COLUMNS)
# Columns of words rather than figures: left-aligned in the HTML table.
TEXT_COLUMNS = frozenset({"scenario", "strategy", "status"})


def cells(scenario: dict[str, Any]) -> list[str]:
    """One scenario's row of the summary table."""
    return [cell(scenario) for _, cell in COLUMNS]
