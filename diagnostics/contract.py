"""The run directory's contract: its file names, the columns of samples.csv, one sample.

Every writer (the harness, ``diagnostics watch``, the test fixtures) and every reader
(reports/) takes these from here, so a file renamed or a column added is one edit.
Standard library only and importing nothing of the project: loadtest, diagnostics,
reports and the Locust process may all import it without breaking the house rules.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from enum import Enum, StrEnum
from functools import cache
from typing import Any, ClassVar, Self, Union, get_args, get_origin, get_type_hints

RUN = "run.json"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
INDEX_HTML = "index.html"
ZOMBIES_PNG = "zombies.png"
CHILDREN_PNG = "children.png"
LIFETIMES_PNG = "lifetimes.png"
"""How long children stayed zombies, exit to reap, per scenario (from events.csv)."""
RUN_PLOTS = (ZOMBIES_PNG, CHILDREN_PNG, LIFETIMES_PNG)
"""The run-wide figures, in the order index.html shows them (reports/plots.py draws each)."""
RUN_REPORT = (INDEX_HTML, SUMMARY_MD, SUMMARY_JSON, *RUN_PLOTS)
"""The run-wide files reports/ writes, as the harness lists them when it ends."""

SAMPLES = "samples.csv"
SCENARIO = "scenario.json"
SERVER = "server.json"
SERVER_LOG = "server.log"
LOCUST_PREFIX = "locust"
"""Locust's --csv prefix: it writes the four files below from it."""
STATS = f"{LOCUST_PREFIX}_stats.csv"
HISTORY = f"{LOCUST_PREFIX}_stats_history.csv"
FAILURES = f"{LOCUST_PREFIX}_failures.csv"
EXCEPTIONS = f"{LOCUST_PREFIX}_exceptions.csv"
LOCUST_LOG = f"{LOCUST_PREFIX}.log"
REQUESTS = f"{LOCUST_PREFIX}_requests.csv"
"""Completed requests and failures, running totals read ten times a second on the
samples' clock (unix time), written by loadtest/in_locust/timeline.py."""
REQUEST_COLUMNS = ("time", "requests", "failures")
WORKERS = f"{LOCUST_PREFIX}_workers.json"
"""Requests and failures of each Locust worker of a distributed run, written by the master
at exit (loadtest/in_locust/workers.py)."""
WORKER_DEATH_SIGNAL = "REAPERLAB_WORKER_DEATH_SIGNAL"
"""The environment variable by which the harness gives the Locust it starts a death signal
for the workers Locust forks itself (``--processes``): they take it as theirs
(loadtest/in_locust/workers.py), so a Locust frozen when the harness died leaves no
stopped worker. Workers started on other machines do not inherit it."""
HARNESS_LOG = "harness.log"
"""The harness's trace, with REAPERLAB_DEBUG=1 or --debug (loadtest/trace.py)."""


class _Record:
    """A JSON file of the run directory as a dataclass: to the dict to write, and back
    (:meth:`checked` for a reader, which cannot trust the file)."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    """Set by @dataclass on each record; declared so the checker knows a record is one."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The keys this record knows (a status word as its :class:`Status`); others (added
        by a newer writer) are left out."""
        values = {}
        # A class is hashable; mypy checks its __hash__ unbound (python/mypy#11470).
        for item, accepted in _declared(cls).items():  # type: ignore[arg-type]
            if item.name in data:
                value = data[item.name]
                kind = _enum_in(accepted)
                values[item.name] = kind(value) if kind and value is not None else value
        return cls(**values)

    @classmethod
    def checked(cls, data: dict[str, Any]) -> tuple[Self, list[str]]:
        """The record as a reader may trust it, and a note for each value it could not take.

        For files from anywhere (an older writer, a crash, a hand edit), where
        :meth:`from_json` would raise or let a wrong type through: a value of another
        type than the field declares gives way to the field's default, a missing
        required field to a neutral value (null where allowed, else "", NaN, 0, false,
        {} or []), each with a note; keys the record does not know are left out.
        Containers are checked one level deep. Never raises.
        """
        values: dict[str, Any] = {}
        notes: list[str] = []
        for item, accepted in _declared(cls).items():  # type: ignore[arg-type]  # as above
            taken = _as_declared(data[item.name], accepted) if item.name in data else _UNFIT
            if taken is not _UNFIT:
                values[item.name] = taken
                continue
            if item.name in data:
                wanted = " or ".join(_json_name(kind) for kind in accepted)
                problem = f"should be {wanted}, not {_json_value(data[item.name], accepted)}"
            elif _has_default(item):
                continue
            else:
                problem = "is missing"
            values[item.name] = _fallback(item, accepted)
            notes.append(f"{item.name} {problem} (read as {_shown(values[item.name])})")
        return cls(**values), notes


@cache
def _declared(cls: type[_Record]) -> dict[Field[Any], tuple[type, ...]]:
    """Each field of a record with the JSON types its annotation accepts."""
    hints = get_type_hints(cls)
    return {item: _accepted(hints[item.name]) for item in fields(cls)}


def _accepted(hint: Any) -> tuple[type, ...]:
    """The runtime types of an annotation: ``X | None`` is both, ``dict[str, Any]`` is dict."""
    if get_origin(hint) in (Union, types.UnionType):
        return tuple(kind for arg in get_args(hint) for kind in _accepted(arg))
    return (object,) if hint is Any else (get_origin(hint) or hint,)


_UNFIT = object()
"""What :func:`_as_declared` gives for a value its field cannot take."""


def _as_declared(value: Any, accepted: tuple[type, ...]) -> Any:
    """The value as its field holds it (a word of a named set as its member), or _UNFIT."""
    kind = _enum_in(accepted)
    if kind is not None and isinstance(value, str):
        return kind(value) if value in kind._value2member_map_ else _UNFIT
    return value if _fits(value, accepted) else _UNFIT


def _enum_in(accepted: tuple[type, ...]) -> type[Enum] | None:
    return next((kind for kind in accepted if issubclass(kind, Enum)), None)


def _fits(value: Any, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # a bool is an int to Python, never to JSON
        return bool in accepted
    if isinstance(value, int) and float in accepted:  # JSON may write 2.0 as 2
        return True
    return isinstance(value, accepted)


def _has_default(item: Field[Any]) -> bool:
    return item.default is not MISSING or item.default_factory is not MISSING


_NEUTRAL: dict[type, Callable[[], Any]] = {float: lambda: math.nan}
"""A neutral value of a type where calling it does not give one (float() would be 0.0)."""


def _fallback(item: Field[Any], accepted: tuple[type, ...]) -> Any:
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    if type(None) in accepted:
        return None
    return _NEUTRAL.get(accepted[0], accepted[0])()


_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
    type(None): "null",
}


def _json_name(kind: type) -> str:
    if issubclass(kind, Enum):
        return "one of " + ", ".join(json.dumps(member.value) for member in kind)
    return _JSON_NAMES.get(kind, kind.__name__)


def _json_value(value: Any, accepted: tuple[type, ...]) -> str:
    """What a value is, as a note names it: the word itself where a named set wanted one."""
    if isinstance(value, str) and _enum_in(accepted) is not None:
        return json.dumps(value)
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    return "unknown" if isinstance(value, float) and math.isnan(value) else json.dumps(value)


class Status(StrEnum):
    """How a scenario stands: scenario.json's ``status``, one word of this set.

    The harness (loadtest/experiment.py) writes RUNNING until the scenario ends, then
    what ended it; a harness error names its own (loadtest/errors.py). ``diagnostics
    watch`` uses the same set, and run.json's ``exit_status`` the same words for the
    whole run (or ``error: SCENARIO: why``, :func:`run_error`). Readers judge a status by
    :data:`NOT_OK`, never by a list of their own.
    """

    RUNNING = "running"
    """Not ended yet, or the harness was killed before it could say how it ended."""
    OK = "ok"
    CAPPED = "capped"
    """The load was stopped at the zombie cap: what a capped run is for, not a failure."""
    PIDS_LIMIT = "pids-limit"
    """The load was stopped because the server's live processes, not its zombies, filled its
    cgroup's pids.max: its forks failed, so what was asked was not measured."""
    FAILED = "failed"
    SERVER_DIED = "server-died"
    FAILED_REQUESTS = "failed-requests"
    NO_WORKERS = "no-workers"
    INTERRUPTED = "interrupted"
    TARGET_EXITED = "target-exited"
    """A watch whose target exited before its duration: the samples up to then stand."""
    ERROR = "error"
    """A watch that could not go on (its files could not be written)."""


NOT_OK = frozenset(Status) - {Status.RUNNING, Status.OK, Status.CAPPED, Status.TARGET_EXITED}
"""The statuses of a scenario that did not do what was asked: a report warns of each."""


class Source(StrEnum):
    """Where a figure comes from: the values of scenario.json's ``sources``.

    Each figure has one source, chosen by what measures it, and the record names it, so a
    reader knows an exact count from a sampled one. A new source of a figure (the kernel's
    event record for children, zombies and reaps) is one member here and one assignment
    where the harness takes the figure from it.
    """

    TIMELINE = "timeline"
    """The harness's own request timeline, ten rows a second (REQUESTS)."""
    LOCUST_STATS = "locust-stats"
    """Locust's final stats file (STATS): latencies; counts only where no timeline was kept."""
    LOCUST_HISTORY = "locust-history"
    """Locust's once-a-second history (HISTORY), for a Locust that wrote neither of the above."""
    CGROUP = "cgroup"
    """The server's pids cgroup, as the kernel counts (pids.events, pids.current)."""
    SERVER = "server"
    """The server's own counters, printed at its shutdown (SERVER)."""
    SAMPLED = "sampled"
    """The sampler's samples of the process table, at random moments: a lower bound for a
    peak, and blind to what lives between two samples."""
    EVENTS = "events"
    """The kernel's record of every fork, exit and reap of the server's tree."""


BY_ZOMBIES = "zombies"
BY_LIVE = "live processes"
"""What filled a server's cgroup when the cap was reached (scenario.json's ``cap_hit.by``):
its zombies, or the live processes it added since the limit was set."""


EVENT_FIGURES = ("zombies", "alive", "children", "reaps")
"""The figures of ``sources`` the event record gives where a run has one (what it rests on,
exact or in part sampled, is its summary's ``sampled``)."""


def default_sources() -> dict[str, str]:
    """scenario.json's ``sources`` before the harness knows more: the figures every run has,
    from where they always come. The others (requests, failures, refused_at_cap, children,
    reaps) are added as they are measured."""
    return {"zombies": Source.SAMPLED, "alive": Source.SAMPLED, "latency": Source.LOCUST_STATS}


def run_failed(message: str) -> str:
    """run.json's ``exit_status`` when the run failed: why, in one line."""
    return f"error: {message}"


def run_error(scenario: str, message: str) -> str:
    """run.json's ``exit_status`` when a scenario failed: which one, and why, in one line."""
    return run_failed(f"{scenario}: {message}")


class Phase(StrEnum):
    """What a running scenario is doing, as the live view shows it (loadtest/live.py).

    A scenario goes through them in this order; once ended, its :class:`Status` shows.
    """

    STARTING_SERVER = "starting server"
    LOAD = "load"
    SETTLING = "settling"
    STOPPING_SERVER = "stopping server"


class LoadEnd(StrEnum):
    """What ended the load: scenario.json's ``load_ended_by`` (loadtest/experiment.py)."""

    LOCUST_EXITED = "Locust exited"
    """How a headless run ends: Locust stops by itself at its run time."""
    DURATION = "duration"
    """A --web run still going at --duration."""
    CTRL_C = "Ctrl-C"
    """How a --web run is ended."""
    ZOMBIE_CAP = "the zombie cap"
    PIDS_LIMIT = "the pids limit"
    """The server's live processes, not its zombies, filled its cgroup's pids.max."""
    OVERRUN = "the harness: Locust overran its run time"
    """A headless Locust still running past its run time and start-up: the harness stopped it."""


@dataclass(kw_only=True, slots=True)
class RunRecord(_Record):
    """run.json: what was asked, on which machine, and how the run ended.

    Written by the harness and by ``diagnostics watch``; a figure a kind of run does not
    have stays null. ``to_json`` gives the dict to write (more keys may be added to it:
    readers ignore those they do not know), ``from_json`` takes the known keys back,
    ``checked`` takes them type by type (what reports/ reads with).
    """

    id: str
    kind: str
    """``loadtest`` or ``watch``."""
    started: float
    ended: float | None = None
    exit_status: str = Status.RUNNING
    """A :class:`Status` word, or :func:`run_error`'s line."""
    exit_code: int | None = None
    parameters: dict[str, Any]
    scenarios: list[str]
    machine: dict[str, Any]
    subreaper: bool | None = None
    """Whether the harness became a child subreaper (null: a watch, which does not try)."""
    interrupts: int | None = None
    """Ctrl-C's and SIGTERMs the harness received (null: a watch, which does not count them)."""


@dataclass(kw_only=True, slots=True)
class ScenarioRecord(_Record):
    """scenario.json: what one scenario asked for and what happened.

    Written by the harness (every field, as the scenario goes) and by ``diagnostics
    watch`` (the few a watch has; the rest stay null, which readers take as not
    measured). ``reaps_all``, ``meaning``, ``shortfall`` and ``color_key`` are what
    reports need of the strategy, copied from server/reapers.py's registry.

    In the harness one record lives for the whole scenario, owned by the thread that
    runs it (loadtest/experiment.py): its steps return typed results and the scenario
    alone assigns them here; other threads hand their findings over, they never write
    into it. It becomes JSON only when saved (:meth:`to_json`). A new figure is one
    field here and the line of the harness that assigns it.
    """

    name: str
    strategy: str | None = None
    leak_client_fd: bool | None = None
    child_keeps_listener: bool | None = None
    server_flags: list[str] | None = None
    """Our server's flags in effect (its reaper, its faults, the ``--work-ms`` it ran with);
    null for a server not ours (``server_cmd``)."""
    reaps_all: bool | None = None
    meaning: str | None = None
    shortfall: str | None = None
    color_key: int | None = None
    server_cmd: str | None = None
    pid1: dict[str, Any] | None = None
    """With the server as PID 1 of a new PID namespace, as in a container (``--pid1``,
    ``--containers``): ``{"init"}`` ("none", "dumb-init" or "tini"), and once it runs the
    host PIDs ``"pid1"`` (the namespace's PID 1: the init, or the server itself; the
    sampler's target) and ``"server"``, with ``"server_nspid"``, the server's PID inside.
    None when the server runs as any other process."""
    asked: dict[str, Any] | None = None
    started: float
    load_started: float | None = None
    load_ended: float | None = None
    ended: float | None = None
    status: Status = Status.RUNNING
    capped: bool = False
    cap: int | None = None
    capped_at: float | None = None
    cap_enforcement: str | None = None
    cgroup: dict[str, Any] | None = None
    refused_at_cap: int | None = None
    data_ends_at: float | None = None
    interrupted_at: float | None = None
    server_pid: int | None = None
    locust_pid: int | None = None
    exit_code: int | None = None
    peak_zombies: int | None = None
    samples: int | None = None
    baseline_sample: dict[str, Any] | None = None
    final_sample: dict[str, Any] | None = None
    final_server_sample: dict[str, Any] | None = None
    """The server's own figures (its children, its zombies) at the final sample, where the
    sampler's target is not the server: an init as PID 1 in front of it."""
    settle: dict[str, Any] | None = None
    zombie_holders: list[dict[str, Any]] | None = None
    load_ended_by: LoadEnd | None = None
    workers: dict[str, Any] | None = None
    """Per-worker requests and failures (--expect-workers), as the Locust master wrote them:
    ``{"workers": [{"id", "requests", "failures"}, ...], "count": n}``."""
    shell_wrapper: bool | None = None
    reaped_child_faults: int | None = None
    sigchld_handled: dict[str, str] | None = None
    load: dict[str, Any] | None = None
    locust_exit: int | None = None
    server_counters: dict[str, Any] | None = None
    locust_cpu: float | None = None
    locust_cpu_scope: str | None = None
    """Whose CPU locust_cpu is, when not all of Locust's (remote workers go unmeasured)."""
    events: dict[str, Any] | None = None
    """The event record's :class:`EventSummary` (``to_json()``); null: no event record."""
    listener_aftermath: dict[str, Any] | None = None
    """What the children that kept the listening socket did once the parent was killed
    (:class:`ListenerAftermath`, ``to_json()``); null where the scenario does not show it."""
    sources: dict[str, str] = field(default_factory=default_sources)
    """Where each figure comes from, by name (a :class:`Source` word): ``requests`` and
    ``failures``, ``refused_at_cap``, ``zombies`` and ``alive``, ``children`` (forked) and
    ``reaps``, ``latency``."""
    cap_hit: dict[str, Any] | None = None
    """What the kernel held when the cap was reached: ``{"at", "by", "zombies", "live",
    "live_at_start", "pids_max"}``; ``by`` is "zombies", or "live processes" when the
    server's live processes (not its zombies) filled its cgroup's pids.max (then the
    status is pids-limit and ``capped`` stays false)."""
    stops: dict[str, Any] = field(default_factory=dict)
    """How the harness ended the server and Locust: ``{"server": {...}, "locust": {...}}``,
    each ``{"pid", "signals", "waited_s", "killed", "ended"}`` (loadtest/processes.py)."""
    left_running: list[dict[str, Any]] = field(default_factory=list)
    """Processes of the tree the harness started or adopted that were still running once the
    server and Locust had been stopped, which the harness then killed: ``[{"pid", "command"}]``."""
    daemonized: dict[str, Any] | None = None
    """A server whose launcher exited while its daemon went on: ``{"launcher_pid", "pid",
    "command"}``; the daemon (server_pid) is what was measured."""
    lost_workers: list[dict[str, Any]] = field(default_factory=list)
    """Locust workers (--processes) that ended during the load: ``[{"pid", "ended", "at_s"}]``."""
    cross_checks: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# How each float column of samples.csv is written; integers are written as they are.
_FLOAT_FORMATS = {
    "time": ".6f",
    "elapsed": ".6f",
    "cpu_percent": ".1f",
    "sample_cost_ms": ".4f",
}


@dataclass(slots=True)
class Sample:
    """One observation of a target, one row of samples.csv. ``None``: could not be read."""

    time: float  # unix seconds
    elapsed: float  # seconds since the sampler started
    children: int  # direct children: alive + zombies
    alive: int
    zombies: int
    descendant_zombies: int  # zombies among grandchildren and deeper
    fds: int | None
    rss_bytes: int | None
    cpu_percent: float | None
    threads: int | None
    sample_cost_ms: float  # CPU time (user + system) this sample took
    listener_holders: int | None = None
    """Live processes of the tree (the listener's own process aside) that hold a listening
    socket of the target, or of the first process below it that listens; None where none
    listened when sampling began. Our server's children should hold none (they close it)."""

    def csv_row(self) -> list[str]:
        """The row for samples.csv, in :data:`SAMPLE_COLUMNS` order; unknown figures are empty."""
        return [_format(name, getattr(self, name)) for name in SAMPLE_COLUMNS]


SAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Sample))
FLOAT_COLUMNS = frozenset(_FLOAT_FORMATS)


def _format(name: str, value: float | None) -> str:
    if value is None:
        return ""
    return format(value, _FLOAT_FORMATS.get(name, ""))


EVENTS = "events.csv"
"""One row per child of the observed tree (:class:`ChildRecord`), written by
diagnostics/event_recorder.py; what the rows rest on is in :class:`EventSummary`."""

# How the recorder came to know a child (ChildRecord.origin).
FORKED = "forked"
"""Its fork was seen: forked_at is the kernel's timestamp."""
PRE_EXISTING = "pre-existing"
"""It was there when the record began (no fork event: a prefork pool's workers)."""
DISCOVERED = "discovered"
"""Found later by a scan of /proc (no connector, or events lost): its fork was not seen."""
# Where a child's exit time came from (ChildRecord.exit_source).
EXIT_FROM_CONNECTOR = "connector"
"""The kernel's own timestamp of the exit, from the process-events connector."""
EXIT_FROM_PIDFD = "pidfd"
"""When the recorder saw the child's pidfd turn readable: late by the poller's latency."""
EXIT_FROM_SCAN = "scan"
"""When a scan of /proc first found it a zombie: late by up to the scan interval."""
EXIT_BEFORE_SEEN = "before-seen"
"""Already a zombie when the recorder first saw it: exited_at is empty."""
# Where a child's reap time came from (ChildRecord.reap_source).
REAP_FROM_KERNEL = "kernel"
"""Stamped by the kernel as the reaper's wait call returned, or as a child the kernel
reaps itself exited (diagnostics/bpf_reaps.py): the reap itself, within microseconds."""
REAP_WITH_PARENT = "with-parent"
"""Released by the kernel as its parent exited, with no wait call (a zombie handed to an
adopter that ignores SIGCHLD; the zombies of a PID namespace's init as it dies):
reaped_at is the parent's exit, which the kernel stamps a few microseconds later."""
REAP_FROM_PIDFD = "pidfd"
"""When the recorder saw the child's pidfd hang up: late by the poller's latency."""
REAP_FROM_SCAN = "scan"
"""When a scan of /proc first found it gone: late by up to the scan interval."""
REAP_GONE_WHEN_LOOKED = "gone-when-looked"
"""Reaped before the recorder could watch it (reaped_at: when it found it gone)."""
REAP_PID_REUSED = "pid-reused"
"""Found reaped when its PID came back for a newer process (reaped_at: that fork)."""
MEASURED_REAPS = frozenset({REAP_FROM_KERNEL, REAP_WITH_PARENT, REAP_FROM_PIDFD})
"""Reap sources whose time is the reap itself (up to the poller's latency); the others
give only a time by which it had been reaped."""
MEASURED_EXITS = frozenset({EXIT_FROM_CONNECTOR, EXIT_FROM_PIDFD})

OPTIONAL_EVENT_COLUMNS = frozenset({"adopted_at"})
"""Columns added after the first events.csv: a file without them reads as empty cells."""


@dataclass(slots=True)
class ChildRecord:
    """One child of the observed tree (any depth), one row of events.csv.

    Times are unix seconds on the samples' clock; an empty cell (None) is not known or
    did not happen: ``exited_at`` empty with ``exit_source`` empty is a child still alive
    when the record ended, ``reaped_at`` empty after an exit is a zombie never reaped.
    The identity of a child is ``pid`` with ``started`` (PIDs are reused).
    """

    pid: int
    started: float | None
    """Its start time: the fork's timestamp where the fork was seen (the kernel stamps the
    start just before), else /proc's start time to the clock tick (10 ms); empty if it
    was gone before the recorder could read it."""
    parent: int
    """The process that forked it (for a child not seen forked: its parent when seen)."""
    depth: int
    """1 for a child of the root, 2 for a grandchild, and so on."""
    command: str
    """Its command line: its parent's until it runs exec, then the new one; for a child
    alive at the end, the one it has then (a prefork worker may rename itself)."""
    origin: str
    """FORKED, PRE_EXISTING or DISCOVERED (above)."""
    seen_at: float
    forked_at: float | None
    exited_at: float | None
    exit_source: str
    """One of the EXIT_* names above; "" while it has not exited."""
    exit_code: int | None
    exit_signal: str | None
    """The signal that ended it ("SIGKILL"), if one did."""
    reaped_at: float | None
    reap_source: str
    """One of the REAP_* names above; "" while it has not been reaped."""
    reaped_by: int | None
    """Who waited for it: its parent, or whoever adopted it; empty if not known."""
    adopted_by: int | None
    """The subreaper or init it was handed to when its parent died; empty if none (or
    not known)."""
    adopted_at: float | None = None
    """When it was handed on: its parent's exit (a scan's moment where no exit was seen:
    a bound). Files written before this column read as empty."""

    def csv_line(self) -> str:
        """The row as a line of events.csv (see :func:`event_line`)."""
        return event_line(
            self.pid, self.started, self.parent, self.depth, self.command, self.origin,
            self.seen_at, self.forked_at, self.exited_at, self.exit_source, self.exit_code,
            self.exit_signal, self.reaped_at, self.reap_source, self.reaped_by, self.adopted_by,
            self.adopted_at,
        )  # fmt: skip

    @classmethod
    def from_csv(cls, row: dict[str, str]) -> ChildRecord:
        """A row as read by csv.DictReader; ValueError (naming the cell) if one is bad."""
        values: dict[str, Any] = {}
        for name, accepted in _EVENT_TYPES.items():
            cell = row.get(name)
            if cell is None and name in OPTIONAL_EVENT_COLUMNS:
                cell = ""
            if cell is None:
                raise ValueError(f"{name} is missing")
            try:
                values[name] = _event_value(cell, accepted)
            except ValueError:
                raise ValueError(f"{name} is not {accepted[0].__name__}: {cell!r}") from None
        return cls(**values)


EVENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ChildRecord))
EVENT_HEADER = ",".join(EVENT_COLUMNS) + "\r\n"
"""The first line of events.csv."""


def event_line(
    pid: int, started: float | None, parent: int, depth: int, command: str, origin: str,
    seen_at: float, forked_at: float | None, exited_at: float | None, exit_source: str,
    exit_code: int | None, exit_signal: str | None, reaped_at: float | None, reap_source: str,
    reaped_by: int | None, adopted_by: int | None, adopted_at: float | None,
) -> str:  # fmt: skip
    """A row of events.csv, as csv.writer would write it: times to the microsecond, an
    empty cell for None, free text quoted where it must be.

    The event recorder makes a line per child of the machine's busiest trees, straight
    from its own record (no :class:`ChildRecord` made on the way), so this is one
    expression taking the cells by position: a csv.writer over a list of cells took
    three times as long. The parameters are the columns, in :data:`EVENT_COLUMNS` order;
    a test holds the two together, and the lines to csv.writer's.
    """
    return (
        f"{pid},{'' if started is None else f'{started:.6f}'},{parent},{depth},"
        f"{_text(command)},{origin},{seen_at:.6f},"
        f"{'' if forked_at is None else f'{forked_at:.6f}'},"
        f"{'' if exited_at is None else f'{exited_at:.6f}'},{exit_source},"
        f"{'' if exit_code is None else exit_code},{'' if exit_signal is None else exit_signal},"
        f"{'' if reaped_at is None else f'{reaped_at:.6f}'},{reap_source},"
        f"{'' if reaped_by is None else reaped_by},{'' if adopted_by is None else adopted_by},"
        f"{'' if adopted_at is None else f'{adopted_at:.6f}'}\r\n"
    )


def _text(text: str) -> str:
    """Quoted (its quotes doubled) where it holds a comma, a quote or a line break."""
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


_EVENT_TYPES = {
    item.name: _accepted(get_type_hints(ChildRecord)[item.name]) for item in fields(ChildRecord)
}


def _event_value(cell: str, accepted: tuple[type, ...]) -> Any:
    if cell == "" and type(None) in accepted:
        return None
    kind = accepted[0]
    return cell if kind is str else kind(cell)


@dataclass(kw_only=True, slots=True)
class EventSummary(_Record):
    """What an event record rests on and what it showed: one object for scenario.json
    (``ScenarioRecord.events``) or run.json, written by diagnostics/event_recorder.py.

    ``sources`` names where each of fork, exit and reap came from ("connector", "kernel",
    "pidfd", "scan"); ``sampled`` says, for each figure that is only sampled, why. Events lost are
    counted from the kernel's per-CPU sequence numbers where the connector ran.
    """

    file: str = EVENTS
    root_pid: int
    recorder_pid: int | None = None
    """The process that kept the record: in the harness, the harness itself, a child
    subreaper that adopts (and reaps) the orphans of the tree it started."""
    started: float
    ended: float | None = None
    until: float | None = None
    """The moment ``figures`` describe the tree at (null: the end of the record). The
    harness judges a server until it asked it to stop (or until the Ctrl-C that
    interrupted the run); the record goes on until its orphans are reaped."""
    sources: dict[str, str] = field(default_factory=dict)
    sampled: dict[str, str] = field(default_factory=dict)
    """Figure ("forks", "exits", "reaps") -> why it is sampled rather than measured."""
    connector: str = ""
    """"ok", or why the process-events connector could not be used."""
    pidfd: str = ""
    """"ok", or why pidfds could not give reap times."""
    reap_probe: str = ""
    """"ok", or why the kernel could not stamp the reaps (diagnostics/bpf_reaps.py); empty
    in a record older than the probe."""
    reaps_lost: int = 0
    """Reaps the kernel stamped that the probe's ring buffer had no room for."""
    receive_buffer_bytes: int | None = None
    overflows: int = 0
    """Times the connector's receive buffer overflowed (ENOBUFS): events were dropped."""
    events_lost: int | None = None
    """Connector events dropped, at least (null without the connector): the gaps in the
    kernel's per-CPU sequence numbers, and one per overflow at the least. 0 only when
    neither shows a loss."""
    events_read: int = 0
    """Connector events read, for the whole machine (the connector cannot filter by tree)."""
    children: int = 0
    forked: int = 0
    pre_existing: int = 0
    discovered: int = 0
    root_forks: int | None = None
    """Forks by the root seen over the whole record (a server's own ``forked`` counter);
    null: not counted (an older record)."""
    root_reaps: int | None = None
    """Reaps by the root over the whole record, its shutdown's included; null: not counted."""
    server: dict[str, Any] | None = None
    """The server's own figures where the root is PID 1 of the server's PID namespace (an
    init in front of it, or the server itself): ``{"pid", "is_root", "forks", "reaps",
    "reaps_judged", "orphan_reaps_judged", "final_zombies", "final_live"}``
    (diagnostics/lifetimes.py's server_figures); null where the root is the server (the
    root's figures are its own) or there is no server (a watch)."""
    unwatched: int = 0
    """Children whose reap the recorder could not watch (gone, or no pidfd to spare):
    their reap time is only bounded."""
    scan_interval_s: float | None = None
    reap_latency_ms: dict[str, Any] | None = None
    """How late the poller sees a pidfd event: {"probes", "p50", "p99", "max"}, measured
    with wake-ups at random times during the record; null where the kernel stamped the
    reaps (no poller's latency in them)."""
    cpu_seconds: float | None = None
    """CPU time of the recorder's thread."""
    figures: dict[str, Any] = field(default_factory=dict)
    """What the record shows, up to ``until`` (diagnostics/lifetimes.py's figures of the
    file)."""
    samples_check: dict[str, Any] | None = None
    """The samples taken beside the record, checked against it (no sample may show more
    zombies than the events at its moment): ``{"samples", "above_events", "first": [lines]}``;
    null where no sampler ran beside it. Filled by whoever ran both (the harness)."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(kw_only=True, slots=True)
class ListenerAftermath(_Record):
    """What a child that keeps the listening socket does once its parent is gone:
    scenario.json's ``listener_aftermath``, written by loadtest/aftermath.py (which says
    how each figure is measured). Times are unix seconds on the samples' clock; a figure
    not reached (the step before it failed) is null.
    """

    signal: str
    """How the parent was stopped, alone (not its process group): "SIGKILL"."""
    parent_pid: int
    address: str
    """The listening socket, as people write it (127.0.0.1:PORT)."""
    counted_from: str
    """Where the processes whose descriptors were read came from: the server's cgroup
    (cgroup.procs), or the parent's children and then the harness's."""
    held: int
    """Requests the harness held in flight, so that children ran when the parent died."""
    holders_at_stop: int | None = None
    """Processes holding the listening socket when the parent was killed."""
    stopped_at: float | None = None
    parent_gone_at: float | None = None
    """When the parent had been reaped: from here only its children can hold the port."""
    listening_after_stop: bool | None = None
    """Whether the port was still in LISTEN in the kernel's table once the parent was gone."""
    bind_while_held: str | None = None
    """A new socket's bind to the port (SO_REUSEADDR) with the parent gone: the errno's
    name ("EADDRINUSE"), or "ok"."""
    bind_tried_at: float | None = None
    probes: int = 0
    """Connections the harness made to the port after the parent was gone."""
    probed_at: float | None = None
    queued: int | None = None
    """The LISTEN row's accept queue (rx_queue) once the probes were made: connections the
    kernel completed and queued, which nobody will accept."""
    answered_while_held: int | None = None
    """Probes that got any answer while a child still held the socket (none can)."""
    probe_fates: dict[str, int] = field(default_factory=dict)
    """What became of the probes once the last holder exited: "reset", "closed" (end of
    file), "answered", "refused" (the connect itself), "no answer"."""
    held_answered: int | None = None
    """Held requests answered by their children after the parent was gone."""
    released_at: list[float] = field(default_factory=list)
    """When each held request was let finish (its head completed), one at a time."""
    last_holder_gone_at: float | None = None
    port_free_at: float | None = None
    """The first look that found the port no longer in LISTEN."""
    bind_after: str | None = None
    """The same bind once the port was free: "ok", or the errno's name."""
    timeline: list[list[float]] = field(default_factory=list)
    """[time, holders, listening (1 or 0)] at each look, from the held requests to the free
    port, a few milliseconds apart."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
