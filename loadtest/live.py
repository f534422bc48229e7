"""What the harness shows while it runs: a live table on a terminal, plain lines elsewhere.

In CI or a pipe, a redrawn table is noise in a log, so the plain view prints one
line per scenario every few seconds instead.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from diagnostics.contract import Phase, Status
from loadtest.drive import SATURATED_CPU
from reports.table import HEADERS, TEXT_COLUMNS, cells


@dataclass(slots=True)
class Progress:
    """One scenario's state as of the latest sample."""

    scenario: str
    phase: Phase | Status
    """What the scenario is doing; once ended, how it ended."""
    elapsed: float = 0.0
    duration: float = 0.0
    rps: float | None = None
    requests: int | None = None
    failures: int | None = None
    alive: int | None = None
    zombies: int | None = None
    """Anywhere in the server's tree."""
    fds: int | None = None
    locust_cpu: float | None = None
    """Locust's CPU as a share of one core (1.0 = a full core)."""
    top_failure: str | None = None
    """The most frequent reason requests failed, with its count."""
    zombies_exact: bool | None = None
    """Whether ``zombies`` and ``alive`` come from the event record (else: sampled)."""


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


SAMPLED_MARK = "~"
"""Before a count that is only sampled (no event record): a lower bound, not the count."""

# The harness's phase names, cut to fit a column at 80 terminal columns.
SHORT_PHASES: dict[Phase | Status, str] = {
    Phase.STARTING_SERVER: "starting",
    Phase.STOPPING_SERVER: "stopping",
}


def describe(progress: Progress) -> list[str]:
    """The cells of one row; both views say the same thing."""
    cpu = progress.locust_cpu
    if progress.phase == Phase.LOAD:
        clock = f"{progress.elapsed:.0f}/{progress.duration:g}s"
    else:  # before the load nothing ran; after it, how long it ran
        clock = f"{progress.elapsed:.1f}s" if progress.elapsed else ""
    return [
        progress.scenario,
        SHORT_PHASES.get(progress.phase, progress.phase),
        clock,
        _figure(progress.rps, ".0f"),
        _figure(progress.requests),
        _figure(progress.failures),
        _figure(progress.alive),
        ("" if progress.zombies_exact or progress.zombies is None else SAMPLED_MARK)
        + _figure(progress.zombies),
        _figure(progress.fds),
        "–" if cpu is None else f"{cpu:.0%}" + ("!" if cpu >= SATURATED_CPU else ""),
    ]


COLUMNS = [
    "scenario", "phase", "time", "req/s", "requests", "fails",
    "live", "zombies", "fds", "cpu",
]  # fmt: skip


PLAIN_KEYS = ["rps", "requests", "failures", "alive", "zombies", "fds", "locust_cpu"]


def carry_over(previous: Progress | None, progress: Progress) -> Progress:
    """A finished scenario keeps its figures: what a later phase does not know, it keeps
    from the last update (the load's time, Locust's CPU)."""
    if previous is None:
        return progress
    for name in ("rps", "requests", "failures", "alive", "zombies", "zombies_exact", "fds",
                 "locust_cpu"):  # fmt: skip
        if getattr(progress, name) is None:
            setattr(progress, name, getattr(previous, name))
    if progress.phase != Phase.LOAD and not progress.elapsed:
        progress.elapsed = previous.elapsed
    return progress


class LiveView:
    """A rich table redrawn four times a second, one row per scenario seen so far.

    It fits 80 columns: short headers, no cell wraps, one space between columns.
    """

    def __init__(self) -> None:
        self._rows: dict[str, Progress] = {}
        self._console = Console()
        self._live = Live(self._table(), console=self._console, refresh_per_second=4)
        self._live.start()

    def _table(self) -> Table:
        table = Table(
            title="reaperlab load test  (live: children running; zombies: in the whole tree,"
            f" {SAMPLED_MARK}: sampled; cpu: Locust's, of one core)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            collapse_padding=True,
            pad_edge=False,
        )
        for column in COLUMNS:
            table.add_column(
                column,
                justify="left" if column in ("scenario", "phase") else "right",
                no_wrap=True,
            )
        for progress in self._rows.values():
            table.add_row(*describe(progress))
        failing = [p for p in self._rows.values() if p.top_failure]
        if failing:
            table.caption = "\n".join(f"{p.scenario} fails: {p.top_failure}" for p in failing)
            table.caption_justify = "left"
        return table

    def update(self, progress: Progress) -> None:
        self._rows[progress.scenario] = carry_over(self._rows.get(progress.scenario), progress)
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
        self._seen: dict[str, Progress] = {}

    def update(self, progress: Progress) -> None:
        progress = carry_over(self._seen.get(progress.scenario), progress)
        self._seen[progress.scenario] = progress
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


def _summary_table(title: str, rows: list[list[str]], width: int) -> Table:
    """The summary's rows as a table: one row per scenario when that fits the width, else
    one column per scenario (figures down the side), so no header is cut to "scen…"."""
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True,
        pad_edge=False,
    )  # fmt: skip
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(HEADERS)]
    if sum(widths) + len(widths) <= width:
        for header in HEADERS:
            table.add_column(header, justify="left" if header in TEXT_COLUMNS else "right")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        return table
    table.add_column("")
    for row in rows:
        table.add_column(Text(row[0]), justify="right")
    for i, header in enumerate(HEADERS[1:], start=1):
        table.add_row(Text(header, style="bold"), *(Text(row[i]) for row in rows))
    return table


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    """The closing summary on a terminal: summary.md's figures, verdicts and warnings
    drawn by rich, as plain text (no Markdown pipes, asterisks or escapes)."""
    console = console or Console()
    run, scenarios = summary["run"], summary["scenarios"]
    title = f"reaperlab {run.get('kind', 'loadtest')} run {run.get('id', '')}"
    console.print(_summary_table(title, [cells(s) for s in scenarios], console.width))
    for scenario in scenarios:
        line = Text()
        line.append(f"{scenario['name']}: ", style="bold")
        line.append(str(scenario["verdict"]))
        console.print(line)
    warnings = [str(w) for w in run.get("warnings", [])]
    warnings += [f"{s['name']}: {w}" for s in scenarios for w in s.get("warnings", [])]
    if warnings:
        console.print(Text("warnings", style="bold yellow"))
        for warning in warnings:
            console.print(Text(f"- {warning}"))
