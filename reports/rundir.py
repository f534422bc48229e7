"""A run directory read into memory: run.json, then per scenario its samples, counters, Locust.

This is the only module that knows the layout of a run directory (see docs/design.md). It reads
files only, so any run, including `diagnostics watch` output, can be redrawn later. It
never raises on bad content: what could not be read becomes a note and a missing-file
mark; only a path that is not a run directory at all raises `NotARunDirectory`. run.json
and scenario.json are read into the contract's records (diagnostics/contract.py), field by
field: a value of the wrong type is a note too, never a wrong figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from diagnostics import events
from diagnostics.contract import (
    EVENTS,
    EXCEPTIONS,
    FAILURES,
    HISTORY,
    LOCUST_LOG,
    REQUESTS,
    RUN,
    SAMPLES,
    SCENARIO,
    SERVER,
    SERVER_LOG,
    STATS,
    ChildRecord,
    EventSummary,
    RunRecord,
    ScenarioRecord,
)
from reports.files import FileState, Read, Table, read_json_object, read_table, to_float
from reports.locust import (
    LocustHistory,
    LocustTotals,
    failure_reasons,
    history_from_table,
    load_totals,
)
from reports.series import first_finite

SCENARIO_FILES = (
    SAMPLES,
    EVENTS,
    SCENARIO,
    SERVER,
    SERVER_LOG,
    STATS,
    HISTORY,
    REQUESTS,
    FAILURES,
    EXCEPTIONS,
    LOCUST_LOG,
)


# Locust stamps its history rows with whole seconds, cut down from the moment of writing;
# half a second puts them, on average, where they were taken instead of up to 1 s early.
LOCUST_CLOCK_OFFSET = 0.5


R = TypeVar("R", RunRecord, ScenarioRecord)


class NotARunDirectory(Exception):
    """The path is missing or holds neither run.json nor any scenario folder."""


@dataclass(frozen=True)
class Samples:
    """The sampler's rows as columns; `t` is seconds since the scenario started."""

    t: np.ndarray
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.t)

    def __getitem__(self, name: str) -> np.ndarray:
        """A column by name; one the sampler did not write reads as all-NaN."""
        return self.columns.get(name, np.full(len(self.t), math.nan))

    @property
    def has_deeper_zombies(self) -> bool:
        deeper = self.columns.get("descendant_zombies")
        return deeper is not None and bool(np.nan_to_num(deeper).any())

    def all_zombies(self) -> np.ndarray:
        """Zombies anywhere in the target's tree: its own plus its descendants'.

        A server started under `sh -c` is the shell's child, and its zombies are the
        shell's grandchildren: counted as the target's own zombies they read as none.
        """
        if "descendant_zombies" not in self.columns:
            return self["zombies"]
        return self["zombies"] + self["descendant_zombies"]


@dataclass(frozen=True)
class Completed:
    """Requests completed so far (running totals), `t` on the samples' clock."""

    t: np.ndarray
    requests: np.ndarray
    failures: np.ndarray


def _all_missing() -> dict[str, FileState]:
    return dict.fromkeys(SCENARIO_FILES, FileState.MISSING)


def _unread_scenario() -> ScenarioRecord:
    return ScenarioRecord.checked({})[0]


def _checked(file: str, read: Read[dict[str, Any]], record: type[R]) -> tuple[R, list[str]]:
    """The file's record with a note for each value it could not take; when the file could
    not be read, a record of neutral values and no note (its state says why already)."""
    found, notes = record.checked(read.value or {})
    return found, [f"{file}: {note}" for note in notes] if read.value is not None else []


@dataclass
class Scenario:
    """One scenario's files as read, plus notes on whatever could not be read."""

    name: str
    directory: Path | None
    expected: tuple[str, ...]
    files: dict[str, FileState] = field(default_factory=_all_missing)
    record: ScenarioRecord = field(default_factory=_unread_scenario)
    """scenario.json as far as it could be read: defaults and neutral values stand in for
    the rest, and for all of it when the file was not read (see `recorded`)."""
    server: dict[str, Any] | None = None
    samples: Samples | None = None
    history: LocustHistory | None = None
    history_t: np.ndarray | None = None
    completed: Completed | None = None
    totals: LocustTotals | None = None
    """The load's figures: counts from the request timeline (as of the interrupt, for an
    interrupted run), latencies from Locust's stats (reports.locust.load_totals)."""
    totals_source: str | None = None
    """Where the counts of ``totals`` come from (a contract.Source word)."""
    failure_reasons: list[tuple[str, int]] = field(default_factory=list)
    """Why requests failed (locust_failures.csv), most frequent first."""
    events: list[ChildRecord] | None = None
    """events.csv: one row per child of the tree (None: no event record, or unreadable)."""
    event_summary: EventSummary | None = None
    """scenario.json's ``events``: what the record rests on and its figures."""
    start: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def recorded(self) -> bool:
        """Whether scenario.json was read: without it `record` holds only stand-ins, whose
        status ("running") and capped (false) must not pass for what the harness wrote."""
        return self.files.get(SCENARIO) is FileState.OK

    def since_start(self, at: float | None) -> float:
        """A unix time of the record on the plots' clock (seconds since scenario start)."""
        return to_float(at) - self.start if self.start else math.nan

    def capped_t(self) -> float:
        """When the zombie cap stopped the load, on the plots' clock; NaN if it did not.

        scenario.json gives `capped_at` on the sampler's `elapsed` clock, so it is mapped
        through the first sample at or after that moment.
        """
        at = to_float(self.record.capped_at)
        if self.record.capped is not True or math.isnan(at):
            return math.nan
        if self.samples is None:
            return at
        reached = np.nonzero(self.samples["elapsed"] >= at)[0]
        return float(self.samples.t[reached[0]]) if reached.size else at

    def counter(self, key: str) -> int | None:
        """One of the server's final counters from server.json."""
        value = to_float((self.server or {}).get(key))
        return None if math.isnan(value) else int(value)

    @property
    def final_sample(self) -> dict[str, Any]:
        """The harness's last sample before it stopped the server, or {}."""
        return self.record.final_sample or {}

    @property
    def missing(self) -> list[str]:
        """Expected files not on disk; empty or unreadable ones are explained in `notes`."""
        return [name for name in self.expected if self.files.get(name) is FileState.MISSING]

    @property
    def present(self) -> list[str]:
        """Files on disk, in contract order, for the report's links to raw data."""
        return [name for name in SCENARIO_FILES if self.files.get(name) is not FileState.MISSING]


@dataclass
class Run:
    """A run directory: run.json's record and its scenarios, in the order run.json lists them."""

    directory: Path
    record: RunRecord
    """run.json as far as it could be read; neutral values when it was not (see `recorded`)."""
    recorded: bool
    scenarios: list[Scenario]
    notes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return run_kind(self.record, [scenario.name for scenario in self.scenarios])

    @property
    def id(self) -> str:
        return self.record.id or self.directory.name


def run_kind(record: RunRecord, names: list[str]) -> str:
    """ "loadtest" or "watch" as run.json says; guessed from the folders when it cannot say."""
    return record.kind or ("watch" if names == ["watch"] else "loadtest")


def load_run(path: Path) -> Run:
    """Read a run directory; raise NotARunDirectory only when there is nothing to report on."""
    if not path.exists():
        raise NotARunDirectory(f"{path}: no such directory")
    if not path.is_dir():
        raise NotARunDirectory(f"{path}: not a directory")
    directory = path.resolve()
    try:
        on_disk = sorted(
            child.name
            for child in directory.iterdir()
            if child.is_dir() and any((child / name).exists() for name in SCENARIO_FILES)
        )
    except OSError as exc:
        raise NotARunDirectory(f"{path}: cannot read ({exc.strerror or exc})") from exc
    run_json = read_json_object(directory / RUN)
    if run_json.state is FileState.MISSING and not on_disk:
        raise NotARunDirectory(f"{path}: not a run directory (no run.json, no scenario folders)")

    record, checked = _checked(RUN, run_json, RunRecord)
    notes = [run_json.detail] if run_json.detail else []
    names: list[str] = []
    for name in [*record.scenarios, *on_disk]:
        if isinstance(name, str) and name not in names:
            names.append(name)
    watch = run_kind(record, names) == "watch"
    scenarios = [load_scenario(directory, name, watch) for name in names]
    return Run(directory, record, run_json.value is not None, scenarios, [*notes, *checked])


def is_folder_name(name: str) -> bool:
    """True when `name` names a folder directly inside the run directory (no traversal)."""
    return name not in ("", ".", "..") and "/" not in name and "\x00" not in name


def expected_files(
    strategy: str | None, watch: bool, recorded: bool = False, killed: bool = False
) -> tuple[str, ...]:
    """The files a complete scenario of this kind has; their absence is worth marking.

    ``recorded``: scenario.json says an event record was made (events.csv). ``killed``:
    the harness killed our server on purpose (scenario.json's ``listener_aftermath``), so
    it printed no counters (server.json)."""
    with_events = (EVENTS,) if recorded else ()
    if watch:
        return (SAMPLES, *with_events, SCENARIO)
    own_server = ((SERVER_LOG,) if killed else (SERVER, SERVER_LOG)) if strategy is not None else ()
    return (SAMPLES, *with_events, SCENARIO, *own_server, STATS, HISTORY, LOCUST_LOG)


def load_scenario(run_dir: Path, name: str, watch: bool) -> Scenario:
    """Read one scenario folder; a name that is not a folder name yields an empty scenario."""
    if not is_folder_name(name):
        note = "run.json lists a scenario that is not a folder name; nothing was read"
        return Scenario(name, None, expected_files(None, watch), notes=[note])
    folder = run_dir / name
    files = {file: _state_on_disk(folder / file) for file in SCENARIO_FILES}
    reads: dict[str, Read[Any]] = {
        SCENARIO: read_json_object(folder / SCENARIO),
        SERVER: read_json_object(folder / SERVER),
        SAMPLES: read_table(folder / SAMPLES),
        STATS: read_table(folder / STATS),
        HISTORY: read_table(folder / HISTORY),
        REQUESTS: read_table(folder / REQUESTS),
        FAILURES: read_table(folder / FAILURES),
    }
    files.update({file: result.state for file, result in reads.items()})
    record, checked = _checked(SCENARIO, reads[SCENARIO], ScenarioRecord)
    samples_table: Table | None = reads[SAMPLES].value
    stats_table: Table | None = reads[STATS].value
    history_table: Table | None = reads[HISTORY].value
    failures_table: Table | None = reads[FAILURES].value

    history = history_from_table(history_table) if history_table is not None else None
    requests_table: Table | None = reads[REQUESTS].value
    until = to_float(record.interrupted_at)
    totals, totals_source = load_totals(
        requests_table, stats_table, history, None if math.isnan(until) else until
    )
    start = _time_zero(record, samples_table, history)
    samples = _samples(samples_table, start) if samples_table is not None else None
    if samples is not None:
        samples = _until_final(samples, record.final_sample, start)
    completed = _completed(requests_table, start) if requests_table is not None else None

    event_summary, event_notes = _event_summary(record)
    rows, rows_note = _event_rows(folder / EVENTS, files[EVENTS])
    if rows is None and files[EVENTS] is FileState.OK:
        files[EVENTS] = FileState.UNREADABLE
    expected = expected_files(
        record.strategy, watch, event_summary is not None, record.listener_aftermath is not None
    )
    notes = [
        result.detail
        for file, result in reads.items()
        if result.detail and result.state is not FileState.MISSING
    ]
    notes.extend(checked)
    notes.extend(event_notes)
    if rows_note:
        notes.append(rows_note)
    if samples_table is not None and samples is None:
        files[SAMPLES] = FileState.EMPTY
        notes.append(f"{SAMPLES} has no usable rows")
    if record.name and record.name != name:
        notes.append(f"{SCENARIO} calls this scenario {record.name!r}")
    return Scenario(
        name=name,
        directory=folder,
        expected=expected,
        files=files,
        record=record,
        server=reads[SERVER].value,
        samples=samples,
        history=history,
        history_t=history.timestamp + LOCUST_CLOCK_OFFSET - start if history is not None else None,
        completed=completed,
        totals=totals,
        totals_source=totals_source,
        failure_reasons=failure_reasons(failures_table) if failures_table else [],
        events=rows,
        event_summary=event_summary,
        start=start,
        notes=notes,
    )


def _event_summary(record: ScenarioRecord) -> tuple[EventSummary | None, list[str]]:
    """scenario.json's ``events`` as a summary a reader can trust, with a note per value
    it could not take; None where the scenario has no event record."""
    if not isinstance(record.events, dict):
        return None, []
    summary, notes = EventSummary.checked(record.events)
    return summary, [f"{SCENARIO} events: {note}" for note in notes]


def _event_rows(path: Path, state: FileState) -> tuple[list[ChildRecord] | None, str | None]:
    """events.csv's rows, and a note when some (or all) could not be read."""
    if state is not FileState.OK:
        return None, None
    try:
        rows, notes = events.read(path)
    except (OSError, ValueError) as error:
        return None, f"{EVENTS} could not be read: {error}"
    if notes:
        return rows, f"{len(notes)} rows of {EVENTS} left out; the first: {notes[0]}"
    return rows, None


def _until_final(samples: Samples, final: dict[str, Any] | None, start: float) -> Samples:
    """The samples up to the harness's final one: the load and the settling, not the shutdown.

    After the final sample the harness stops the server, whose children then exit and
    may be zombies for a moment; that is the harness's doing, not the server's, and a
    plot that showed it would contradict the verdict. Plots, figures and verdicts all
    read this one series.
    """
    at = to_float((final or {}).get("time"))
    if math.isnan(at) or not start:
        return samples
    keep = samples.t <= at - start + 1e-6
    if not keep.any():
        return samples
    columns = {name: values[keep] for name, values in samples.columns.items()}
    return Samples(samples.t[keep], columns)


def _state_on_disk(path: Path) -> FileState:
    if not path.exists():
        return FileState.MISSING
    try:
        return FileState.OK if path.stat().st_size else FileState.EMPTY
    except OSError:
        return FileState.UNREADABLE


def _time_zero(
    record: ScenarioRecord, samples: Table | None, history: LocustHistory | None
) -> float:
    """The unix time every series of a scenario is measured from, so their axes line up.

    scenario.json's "started" when present, else the first sample, else Locust's first
    snapshot; 0 when nothing has a clock (the samples' own `elapsed` is used then).
    """
    candidates = [to_float(record.started)]
    if samples is not None:
        candidates.append(first_finite(samples.numbers("time")))
    if history is not None:
        candidates.append(first_finite(history.timestamp))
    return next((value for value in candidates if not math.isnan(value)), 0.0)


def _samples(table: Table, start: float) -> Samples | None:
    """Samples with a time axis; None when no row has a usable clock."""
    if not len(table):
        return None
    # Every column the file has: one a newer sampler added is read without a change here.
    columns = {name: table.numbers(name) for name in table.header}
    unix = columns.get("time")
    if unix is not None and np.isfinite(unix).any() and start:
        t = unix - start
    else:
        t = columns.get("elapsed", np.full(len(table), math.nan))
    usable = np.isfinite(t)
    if not usable.any():
        return None
    return Samples(t[usable], {name: values[usable] for name, values in columns.items()})


def _completed(table: Table, start: float) -> Completed | None:
    """The request timeline; None when it has no row with a clock and a count."""
    t = table.numbers("time") - start
    requests = table.numbers("requests")
    usable = np.isfinite(t) & np.isfinite(requests)
    if not usable.any() or not start:
        return None
    return Completed(t[usable], requests[usable], table.numbers("failures")[usable])
