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
from typing import Any, Self, Union, get_args, get_origin, get_type_hints

RUN = "run.json"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
INDEX_HTML = "index.html"
ZOMBIES_PNG = "zombies.png"
CHILDREN_PNG = "children.png"
RUN_PLOTS = (ZOMBIES_PNG, CHILDREN_PNG)
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The keys this record knows (a status word as its :class:`Status`); others (added
        by a newer writer) are left out."""
        values = {}
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
        for item, accepted in _declared(cls).items():
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
    return {item: _accepted(hints[item.name]) for item in fields(cls)}  # type: ignore[arg-type]


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


def default_sources() -> dict[str, str]:
    """scenario.json's ``sources`` before the harness knows more: the figures every run has,
    from where they always come. The others (requests, failures, refused_at_cap, children,
    reaps) are added as they are measured."""
    return {"zombies": Source.SAMPLED, "alive": Source.SAMPLED, "latency": Source.LOCUST_STATS}


def run_error(scenario: str, message: str) -> str:
    """run.json's ``exit_status`` when a scenario failed: which one, and why, in one line."""
    return f"error: {scenario}: {message}"


class Phase(StrEnum):
    """What a running scenario is doing, as the live view shows it (loadtest/live.py).

    A scenario goes through them in this order; once ended, its :class:`Status` shows.
    """

    STARTING_SERVER = "starting server"
    LOAD = "load"
    SETTLING = "settling"
    STOPPING_SERVER = "stopping server"


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
    reaps_all: bool | None = None
    meaning: str | None = None
    shortfall: str | None = None
    color_key: int | None = None
    server_cmd: str | None = None
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
    settle: dict[str, Any] | None = None
    zombie_holders: list[dict[str, Any]] | None = None
    load_ended_by: str | None = None
    """What ended the load: "Locust exited" (a headless run ends so), "duration", "Ctrl-C"
    (--web runs), "the zombie cap", or the harness stopping a Locust that overran."""
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

    def csv_row(self) -> list[str]:
        """The row for samples.csv, in :data:`SAMPLE_COLUMNS` order; unknown figures are empty."""
        return [_format(name, getattr(self, name)) for name in SAMPLE_COLUMNS]


SAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Sample))
FLOAT_COLUMNS = frozenset(_FLOAT_FORMATS)


def _format(name: str, value: float | None) -> str:
    if value is None:
        return ""
    return format(value, _FLOAT_FORMATS.get(name, ""))
