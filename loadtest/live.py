"""What the harness shows while it runs: a live table on a terminal, plain lines elsewhere.

In CI or a pipe, a redrawn table is noise in a log, so the plain view prints one
line per scenario every few seconds instead.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table


@dataclass(slots=True)
class Progress:
    """One scenario's state as of the latest sample."""

    scenario: str
    phase: str
    elapsed: float = 0.0
    duration: float = 0.0
    rps: float | None = None
    requests: int | None = None
    failures: int | None = None
    alive: int | None = None
    zombies: int | None = None
    fds: int | None = None
    locust_cpu: float | None = None
    """Locust's CPU as a share of one core (1.0 = a full core)."""
    top_failure: str | None = None
    """The most frequent reason requests failed, with its count."""


class View(Protocol):
    def update(self, progress: Progress) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


def open_view(interactive: bool | None = None) -> View:
    if interactive is None:
        interactive = sys.stdout.isatty()
    return LiveView() if interactive else PlainView()


def _figure(value: float | int | None, spec: str = "d") -> str:
    return "–" if value is None else format(value, spec)


def describe(progress: Progress) -> list[str]:
    """The cells of one row; both views say the same thing."""
    left = max(progress.duration - progress.elapsed, 0.0)
    cpu = progress.locust_cpu
    clock = f"{progress.elapsed:5.1f}s / {progress.duration:g}s ({left:.0f}s left)"
    return [
        progress.scenario,
        progress.phase,
        clock if progress.phase == "load" else "",
        _figure(progress.rps, ".0f"),
        _figure(progress.requests),
        _figure(progress.failures),
        _figure(progress.alive),
        _figure(progress.zombies),
        _figure(progress.fds),
        "–" if cpu is None else f"{cpu:.0%}" + (" (saturated)" if cpu >= 0.9 else ""),
    ]


COLUMNS = [
    "scenario", "phase", "time", "req/s", "requests", "failures",
    "live children", "zombies", "fds", "locust cpu",
]  # fmt: skip


PLAIN_KEYS = ["rps", "requests", "failures", "alive", "zombies", "fds", "locust_cpu"]


class LiveView:
    """A rich table redrawn four times a second, one row per scenario seen so far."""

    def __init__(self) -> None:
        self._rows: dict[str, Progress] = {}
        self._console = Console()
        self._live = Live(self._table(), console=self._console, refresh_per_second=4)
        self._live.start()

    def _table(self) -> Table:
        table = Table(title="reaperlab load test", title_justify="left")
        for column in COLUMNS:
            table.add_column(column, justify="left" if column in ("scenario", "phase") else "right")
        for progress in self._rows.values():
            table.add_row(*describe(progress))
        failing = [p for p in self._rows.values() if p.top_failure]
        if failing:
            table.caption = "\n".join(f"{p.scenario} fails: {p.top_failure}" for p in failing)
            table.caption_justify = "left"
        return table

    def update(self, progress: Progress) -> None:
        self._rows[progress.scenario] = progress
        self._live.update(self._table())

    def message(self, text: str) -> None:
        self._live.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self._live.stop()


class PlainView:
    """One line per scenario every ``every`` seconds, and on every change of phase."""

    def __init__(self, every: float = 5.0) -> None:
        self._every = every
        self._last: dict[str, tuple[float, str]] = {}

    def update(self, progress: Progress) -> None:
        now = time.monotonic()
        last_time, last_phase = self._last.get(progress.scenario, (float("-inf"), ""))
        if progress.phase == last_phase and now - last_time < self._every:
            return
        self._last[progress.scenario] = (now, progress.phase)
        cells = describe(progress)
        pairs = zip(PLAIN_KEYS, cells[3:], strict=True)
        text = " ".join(f"{key}={cell}" for key, cell in pairs)
        if progress.top_failure:
            text += f" top_failure={progress.top_failure!r}"
        print(f"[{cells[0]}] {cells[1]} {cells[2]} {text}", flush=True)

    def message(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass
