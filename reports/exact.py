"""A scenario's event record as the report reads it: exact counts as step series, every
child's zombie lifetime, and the figures the summary and the verdicts take from it.

The record is usable where scenario.json has its summary with figures and events.csv
could be read; its figures are then the counts (:func:`usable`). What is exact and what
is only sampled is the summary's ``sampled`` (a source missing, events lost): every
sentence built on such a figure says "sampled". Where there is no usable record the
report falls back to the samples, and says "sampled" too.

The series stop where the record's figures do (``until``: when the harness asked the
server to stop, or the Ctrl-C): what follows is the harness ending and reaping things,
not the server's doing, as with the samples (reports/rundir.py's ``_until_final``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from diagnostics import contract, lifetimes
from diagnostics.contract import ChildRecord, EventSummary
from reports.lifetime_verdicts import EventEvidence, Holder, Pid1, Pool
from reports.rundir import Scenario


@dataclass(frozen=True)
class StepSeries:
    """Counts after each change, on the scenario's clock (seconds since its start): each
    value holds until the next time (draw them as steps, "post")."""

    t: np.ndarray
    live: np.ndarray
    """Live children of the server itself."""
    zombies: np.ndarray
    """Zombies anywhere in its tree."""
    deeper: np.ndarray
    """Of those, held by its grandchildren or deeper."""

    def __len__(self) -> int:
        return len(self.t)


def usable(scenario: Scenario) -> EventSummary | None:
    """The scenario's event summary where its figures stand for the counts: the record
    ran (no error), its figures and rows are there, and its writer counted the root's
    forks (a record older than that has no time for an orphan's adoption, so who held a
    zombie at a past moment cannot be told: the samples stand in)."""
    summary = scenario.event_summary
    if summary is None or summary.errors or not summary.figures or scenario.events is None:
        return None
    return summary if summary.root_forks is not None else None


def judged_rows(scenario: Scenario) -> list[ChildRecord]:
    """The rows as they stood when the record's figures were taken (``until``). For a run
    interrupted then, a child that had exited keeps its reap by its own parent after the
    Ctrl-C: it was in flight, between its exit and its parent's wait, not left a zombie."""
    summary = usable(scenario)
    if summary is None or scenario.events is None:
        return []
    interrupted = scenario.record.interrupted_at is not None
    return lifetimes.as_of(scenario.events, _until(summary), own_reaps_after=interrupted)


def series(scenario: Scenario) -> StepSeries | None:
    """Live children and zombies as exact step series, from the start of the record to
    ``until``; None without a usable record."""
    summary = usable(scenario)
    if summary is None or not scenario.start:
        return None
    changes: list[tuple[float, int, int, int]] = []  # time, live (own), zombies, deeper
    for row in judged_rows(scenario):
        own, down = row.depth == 1, row.depth > 1
        born, died = lifetimes.birth_time(row), lifetimes.exit_time(row)
        if born is not None:
            changes.append((born, own, 0, 0))
        if died is not None:
            changes.append((died, -own if born is not None else 0, 1, down))
            if row.reaped_at is not None:
                changes.append((row.reaped_at, 0, -1, -down))
    begin, end = summary.started, _until(summary)
    changes += [(begin, 0, 0, 0), (end, 0, 0, 0)] if math.isfinite(end) else [(begin, 0, 0, 0)]
    table = np.array(sorted(changes), dtype=float)
    counts = np.cumsum(table[:, 1:], axis=0)
    last = np.append(table[1:, 0] != table[:-1, 0], True)  # the count after each moment's changes
    t, counts = table[last, 0], counts[last]
    keep = (t >= begin) & (t <= end)
    return StepSeries(
        t=t[keep] - scenario.start,
        live=counts[keep, 0],
        zombies=counts[keep, 1],
        deeper=counts[keep, 2],
    )


@dataclass(frozen=True)
class ZombieLifetimes:
    """Exit to reap of the children that exited while the server was judged."""

    spans: np.ndarray
    """Seconds from exit to reap of each child both were timed for, ascending."""
    bounds: np.ndarray
    """For those reaped too soon to be timed, the longest they may have lived (exit to
    the moment they were found gone), ascending."""
    exited: int
    never_reaped: int
    bounded: int
    """Reaped, but only a bound on when: not in ``spans`` (in ``bounds`` where the exit
    time is known)."""


def zombie_lifetimes(scenario: Scenario) -> ZombieLifetimes | None:
    """Of the children that exited during the load (see :class:`Judged`)."""
    split = judged(scenario)
    if split is None:
        return None
    rows = split.exited()
    figures = lifetimes.lifetimes(rows)
    spans: list[float] = []
    bounds: list[float] = []
    for row in rows:
        if row.reaped_at is None:
            continue
        if (span := lifetimes.lifetime(row)) is not None:
            spans.append(span)
        elif row.exited_at is not None:
            bounds.append(max(0.0, row.reaped_at - row.exited_at))
    return ZombieLifetimes(
        np.sort(np.array(spans, dtype=float)),
        np.sort(np.array(bounds, dtype=float)),
        figures.exited,
        figures.never_reaped,
        figures.bounded,
    )


def _until(summary: EventSummary) -> float:
    for moment in (summary.until, summary.ended):
        if moment is not None and math.isfinite(moment):
            return moment
    return math.inf


def figure(summary: EventSummary, *keys: str) -> Any:
    """A value of the summary's figures by its path ("direct", "peak_zombies"); None when
    the file does not have it (an older writer)."""
    value: Any = summary.figures
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class Judged:
    """A scenario's rows as they stood when it was judged, split at the start of the load:
    what the load did is judged on the children that exited after it began; the workers
    and zombies there at that moment are the server's before the load (a prefork server
    forks some of its workers after it listens, while the harness waits for its pool to
    hold still: those are workers before the load, not children of it)."""

    rows: list[ChildRecord]
    start: float
    """When the load began (unix; the record's own start for a watch)."""
    until: float
    server: int | None = None
    """The server's host PID where the record's root is PID 1 of its namespace (its own
    children are those it forked); None: the root is the server (its children are depth 1)."""

    def own_child(self, row: ChildRecord) -> bool:
        """A child of the server itself, not handed to anyone."""
        if self.server is None:
            return row.depth == 1
        return row.parent == self.server and row.adopted_by is None

    def before(self, moment: float | None, row: ChildRecord) -> bool:
        """At or before the start (the record's first look counts as its start: a child
        found there was there before)."""
        return row.origin == contract.PRE_EXISTING or (moment is not None and moment <= self.start)

    def exited(self) -> list[ChildRecord]:
        """Children that exited during the load (and the settling after it)."""
        return [
            row
            for row in self.rows
            if (died := lifetimes.exit_time(row)) is not None
            and not lifetimes.there_before(row)
            and died > self.start
        ]

    def zombies_at_start(self) -> list[ChildRecord]:
        return [
            row
            for row in self.rows
            if (died := lifetimes.exit_time(row)) is not None
            and (lifetimes.there_before(row) or died <= self.start)
            and (row.reaped_at is None or row.reaped_at > self.start)
        ]

    def pool(self) -> Pool | None:
        """The server's own children alive when the load began, and what became of them."""
        workers = [
            row
            for row in self.rows
            if self.own_child(row)
            and not lifetimes.there_before(row)
            and self.before(lifetimes.birth_time(row), row)
            and ((died := lifetimes.exit_time(row)) is None or died > self.start)
        ]
        if not workers:
            return None
        retired = [row for row in workers if lifetimes.exit_time(row) is not None]
        reaps = [span for row in retired if (span := lifetimes.lifetime(row)) is not None]
        newer = [
            row
            for row in self.rows
            if self.own_child(row) and not self.before(lifetimes.birth_time(row), row)
        ]
        return Pool(
            before=len(workers),
            retired=len(retired),
            retired_reaped=sum(row.reaped_at is not None for row in retired),
            slowest_retired_reap_s=max(reaps, default=None),
            kept=len(workers) - len(retired),
            new=len(newer),
            new_alive=sum(lifetimes.exit_time(row) is None for row in newer),
        )


def judged(scenario: Scenario) -> Judged | None:
    summary = usable(scenario)
    if summary is None:
        return None
    start = scenario.record.load_started
    if start is None or not math.isfinite(start):
        start = summary.started
    return Judged(judged_rows(scenario), start, _until(summary))


def evidence(scenario: Scenario) -> EventEvidence | None:
    """What the verdict judges from the record: the children that exited during the load
    until the server was judged, the holders of the zombies they left, the zombies and
    workers there before the load, apart. Where the server ran as PID 1 of a namespace
    (:func:`_as_pid1`), of its own tree only, and the orphans PID 1 was handed apart."""
    summary, split = usable(scenario), judged(scenario)
    if summary is None or split is None:
        return None
    root, pid1 = summary.root_pid, None
    whole = _as_pid1(scenario, split, root)
    if whole is not None:
        split, pid1 = whole
    rows, until = split.rows, split.until
    exited = split.exited()
    before = split.zombies_at_start()
    commands = _commands(scenario, split.rows if whole is None else judged_rows(scenario))
    tree = {root} | {row.pid for row in rows} | ({split.server} if split.server else set())
    # Orphans reaped by an adopter outside the tree (the harness, init) are said apart:
    # how long they waited is their adopter's doing, not the server's.
    adopted = [row for row in exited if row.reaped_by is not None and row.reaped_by not in tree]
    life = lifetimes.lifetimes(exited)
    own = lifetimes.lifetimes([row for row in exited if row not in adopted])
    young = _not_yet_due(exited, own.max_s, until, scenario.events or [], tree)
    young_ids = {id(row) for row in young}
    members = (
        {root}
        | ({split.server} if split.server else set())
        | {row.pid for row in rows if lifetimes.exit_time(row) is None}
    )
    held = _holders([row for row in exited if id(row) not in young_ids], until, commands, root)
    inside = tuple(holder for holder in held if holder.pid in members)
    outside = tuple(holder for holder in held if holder.pid not in members)
    adopters = Counter(row.reaped_by for row in adopted)
    return EventEvidence(
        sampled=dict(summary.sampled),
        forked=sum(
            (born := lifetimes.birth_time(row)) is not None and not split.before(born, row)
            for row in rows
        ),
        exited=life.exited,
        measured=own.measured,
        never_reaped=life.never_reaped - len(young) - sum(holder.zombies for holder in outside),
        not_due=len(young),
        not_due_s=max((until - (row.exited_at or until) for row in young), default=None),
        bounded=own.bounded,
        bounded_max_s=own.bounded_max_s,
        p50_s=own.p50_s,
        max_s=own.max_s,
        holders=inside,
        outside=outside,
        reaped_outside=tuple(
            Holder(pid, count, -1, commands.get(pid or 0, ""), _slowest_of(adopted, pid))
            for pid, count in adopters.most_common()
        ),
        before=len(before),
        before_left=sum(row.reaped_at is None for row in before),
        before_holders=_holders(before, until, commands, root),
        recorder_pid=summary.recorder_pid,
        pool=split.pool(),
        shell_wrapper=scenario.record.shell_wrapper is True,
        pid1=pid1,
    )


def _as_pid1(scenario: Scenario, split: Judged, root: int) -> tuple[Judged, Pid1] | None:
    """For a server run as PID 1 of its namespace (scenario.json's ``pid1``; the record's
    root is then PID 1: an init, or the server itself): the rows of the server's own tree
    (those descending from its host PID, the init and the server's own row left out),
    without the orphans PID 1 adopted, and those orphans' fate; None for any other run."""
    pid1 = scenario.record.pid1 or {}
    server, init = pid1.get("server"), pid1.get("init")
    if not isinstance(server, int) or not isinstance(init, str):
        return None
    below: dict[int, list[ChildRecord]] = {}
    for row in split.rows:
        below.setdefault(row.parent, []).append(row)
    tree: list[ChildRecord] = []
    todo = [server]
    seen = {server}
    while todo:
        for row in below.get(todo.pop(), []):
            tree.append(row)
            if row.pid not in seen:
                seen.add(row.pid)
                todo.append(row.pid)
    handed = [row for row in tree if row.adopted_by == root]
    orphans = Judged(handed, split.start, split.until).exited()
    reaps = [span for row in orphans if (span := lifetimes.lifetime(row)) is not None]
    view = Pid1(
        init=init,
        pid1=root,
        server=server,
        server_nspid=pid1.get("server_nspid")
        if isinstance(pid1.get("server_nspid"), int)
        else None,
        orphans=len(orphans),
        orphans_reaped=sum(row.reaped_at is not None for row in orphans),
        orphans_slowest_s=max(reaps, default=None),
    )
    own = [row for row in tree if row not in handed]
    return Judged(own, split.start, split.until, server), view


def _slowest_of(rows: list[ChildRecord], reaper: int | None) -> float | None:
    spans = [
        span
        for row in rows
        if row.reaped_by == reaper and (span := lifetimes.lifetime(row)) is not None
    ]
    return max(spans, default=None)


def holders(scenario: Scenario) -> list[dict[str, Any]]:
    """Who holds the zombies at the end, every depth, as scenario.json's zombie_holders
    names them ({"pid", "zombies", "cmdline", "depth"}: the holder's depth, 0 for the
    process the harness started); [] without a usable record."""
    summary = usable(scenario)
    if summary is None:
        return []
    rows = judged_rows(scenario)
    nspids = _nspids(scenario)
    return [
        {
            "pid": held.pid,
            "zombies": held.zombies,
            "cmdline": held.command,
            "depth": held.depth,
            "nspid": nspids.get(held.pid or 0),
        }
        for held in _holders(rows, _until(summary), _commands(scenario, rows), summary.root_pid)
    ]


def _nspids(scenario: Scenario) -> dict[int, int]:
    """Host PID -> PID inside its namespace, where that differs (a server run as PID 1):
    PID 1 and the server from scenario.json's ``pid1``, the others from the harness's
    snapshot of the holders."""
    found: dict[int, int] = {}
    for holder in scenario.record.zombie_holders or []:
        fields = holder if isinstance(holder, dict) else {}
        if isinstance(fields.get("pid"), int) and isinstance(fields.get("nspid"), int):
            found[fields["pid"]] = fields["nspid"]
    pid1 = scenario.record.pid1 or {}
    if isinstance(pid1.get("pid1"), int):
        found[pid1["pid1"]] = 1
    if isinstance(pid1.get("server"), int) and isinstance(pid1.get("server_nspid"), int):
        found[pid1["server"]] = pid1["server_nspid"]
    return found


def _not_yet_due(
    exited: list[ChildRecord],
    slowest_s: float | None,
    until: float,
    whole: list[ChildRecord],
    tree: set[int],
) -> list[ChildRecord]:
    """Zombies at ``until`` younger than the slowest reap the server showed, and reaped in
    the end (``whole``: the record past ``until``) by its own tree: not shown left, they
    were within the server's own time to reap (a prefork pool's once-a-second maintenance
    judged between two turns). Said apart, not counted as never reaped."""
    if slowest_s is None:
        return []
    reaped_in_the_end = {(row.pid, row.started): row.reaped_by for row in whole}
    return [
        row
        for row in exited
        if row.reaped_at is None
        and row.exited_at is not None
        and until - row.exited_at <= slowest_s
        and reaped_in_the_end.get((row.pid, row.started)) in tree
    ]


def _holders(
    rows: list[ChildRecord], moment: float, commands: dict[int, str], root: int
) -> tuple[Holder, ...]:
    return tuple(
        Holder(pid, zombies, depth - 1, commands.get(pid, "") if pid is not None else "")
        for pid, depth, zombies in lifetimes.holders(rows, moment, root)
    )


def _commands(scenario: Scenario, rows: list[ChildRecord]) -> dict[int, str]:
    """PID -> command line: the harness's snapshot of the holders at the end first (it
    read /proc then), else the command the record has for a child with that PID."""
    commands = {row.pid: row.command for row in rows}
    for holder in scenario.record.zombie_holders or []:
        if isinstance(holder, dict) and isinstance(holder.get("pid"), int):
            commands[holder["pid"]] = str(holder.get("cmdline") or "")
    return commands


def summary_figures(scenario: Scenario) -> dict[str, Any] | None:
    """The keys of summary.json's scenario row that the record gives, exact (the zombie
    counts, live children, holders), and those only it can give (zombie lifetimes, the
    pool, what it rests on); None without a usable record (the samples stand in)."""
    summary, split = usable(scenario), judged(scenario)
    if summary is None or split is None:
        return None
    figures = lifetimes.summary_figures(scenario.events or [], split.until, summary.root_pid)
    life = asdict(lifetimes.lifetimes(split.exited()))
    pool = split.pool()
    before = split.zombies_at_start()
    left = Counter(lifetimes.holder(row) for row in before if row.reaped_at is None)
    return {
        "peak_zombies": figures["direct"]["peak_zombies"],
        "final_zombies": figures["direct"]["final_zombies"],
        "peak_descendant_zombies": figures["deeper"]["peak_zombies"],
        "final_descendant_zombies": figures["deeper"]["final_zombies"],
        "peak_alive": figures["direct"]["peak_live"],
        "zombie_holders": holders(scenario),
        "zombies_from": ZOMBIES_FROM_EVENTS,
        "zombie_lifetime": {
            "exited": life["exited"],
            "reaped": life["exited"] - life["never_reaped"],
            "measured": life["measured"],
            "never_reaped": life["never_reaped"],
            "bounded": life["bounded"],
            "p50_ms": _ms(life["p50_s"]),
            "p99_ms": _ms(life["p99_s"]),
            "max_ms": _ms(life["max_s"]),
            "bounded_max_ms": _ms(life["bounded_max_s"]),
            "slowest_pid": life["slowest_pid"],
        },
        "zombies_before": {
            "count": len(before),
            "left": left.total(),
            "holders": [{"pid": pid, "zombies": n} for pid, n in left.most_common()],
        },
        "pool": None if pool is None else asdict(pool),
        "events": {
            "file": contract.EVENTS,
            "sources": dict(summary.sources),
            "sampled": dict(summary.sampled),
            "events_lost": summary.events_lost,
            "children": summary.children,
            "forked": figures["forked"],
            "until": summary.until,
            "samples_check": summary.samples_check,
        },
    }


ZOMBIES_FROM_EVENTS = "events"
ZOMBIES_FROM_SAMPLES = "samples"
"""summary.json's ``zombies_from``: which source its zombie and children counts come from."""


def _ms(seconds: Any) -> float | None:
    return round(seconds * 1000, 3) if isinstance(seconds, int | float) else None
