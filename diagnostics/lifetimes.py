"""Figures from an event record (events.csv), not from samples: what reports say of children.

Every function takes the rows :func:`diagnostics.events.read` gives, so a report drawn
later from the file says what the recorder said at the stop. Standard library only.

- :func:`steps`: live children and zombies as step functions, exact at every moment
  (where the sources were: a reap time that is only a bound keeps a zombie counted
  until that bound, so the count errs high, never low);
- :func:`lifetimes`: how long children stayed zombies, exit to reap;
- :func:`workers`: a pool's workers there before the record, retired, kept, replaced;
- :func:`zombies_before`: zombies there when the record began, apart from the load's;
- :func:`holders`: who holds the zombies at a moment, at every depth;
- :func:`cross_check`: no sample may show more zombies than the events at its moment.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from diagnostics import contract
from diagnostics.contract import ChildRecord

SAMPLE_WINDOW_S = 0.05
"""How long after its timestamp a sample may still be reading /proc: a zombie made in
that time can be in the sample though not in the events at its first instant."""


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile of ascending ``ordered``: always an observed value."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def exit_time(row: ChildRecord) -> float | None:
    """When it became a zombie, as far as the record knows: a zombie already when seen
    counts from then; a child reaped with no exit seen counts as exited at its reap."""
    if row.exited_at is not None:
        return row.exited_at
    if row.exit_source == contract.EXIT_BEFORE_SEEN:
        return row.seen_at
    return row.reaped_at


def there_before(row: ChildRecord) -> bool:
    """A zombie already when the record began: not made while it ran. (One found later
    by a scan, without fork events, was made during the record; only its exit time is
    unknown.)"""
    return row.origin == contract.PRE_EXISTING and row.exit_source == contract.EXIT_BEFORE_SEEN


def birth_time(row: ChildRecord) -> float | None:
    """When it joined the tree as a live child, as far as the record knows (None: it
    was a zombie already when seen)."""
    if row.exit_source == contract.EXIT_BEFORE_SEEN:
        return None
    return row.forked_at if row.forked_at is not None else row.seen_at


@dataclass(frozen=True, slots=True)
class Step:
    """The counts from ``time`` until the next step."""

    time: float
    live: int
    zombies: int


def steps(
    rows: Iterable[ChildRecord], which: Callable[[ChildRecord], bool] | None = None
) -> list[Step]:
    """Live children and zombies of the tree (or of the rows ``which`` keeps) after each
    change, in time order; before the first step both are 0."""
    changes: list[tuple[float, int, int]] = []
    for row in rows:
        if which is not None and not which(row):
            continue
        born, died = birth_time(row), exit_time(row)
        if born is not None:
            changes.append((born, 1, 0))
        if died is not None:
            changes.append((died, -1 if born is not None else 0, 1))
            if row.reaped_at is not None:
                changes.append((row.reaped_at, 0, -1))
    changes.sort(key=lambda change: change[0])
    result: list[Step] = []
    live = zombies = 0
    for at, d_live, d_zombies in changes:
        live, zombies = live + d_live, zombies + d_zombies
        if result and result[-1].time == at:
            result[-1] = Step(at, live, zombies)
        else:
            result.append(Step(at, live, zombies))
    return result


def at(series: Sequence[Step], moment: float) -> Step:
    """The counts at ``moment`` (after any step at that very moment)."""
    index = bisect.bisect_right([step.time for step in series], moment) - 1
    return series[index] if index >= 0 else Step(moment, 0, 0)


def peak_zombies(series: Sequence[Step]) -> Step | None:
    """The first moment the zombie count was highest; None without any step."""
    return max(series, key=lambda step: step.zombies, default=None)


class Depths:
    """How far below the root each row's process is held: one below its parent, or, once
    its parent died, one below the process that adopted it (what ``ps`` shows as its
    parent). An orphan PID 1 adopted is PID 1's child, as the samples count it; one
    adopted outside the tree (the harness, a subreaper above it) keeps its own depth."""

    def __init__(self, rows: Iterable[ChildRecord], root: int) -> None:
        self.root = root
        self._depth = {row.pid: row.depth for row in rows}

    def of(self, row: ChildRecord) -> int:
        adopter = row.adopted_by
        if adopter is None:
            return row.depth
        if adopter == self.root:
            return 1
        return self._depth[adopter] + 1 if adopter in self._depth else row.depth

    def direct(self, row: ChildRecord) -> bool:
        """Held by the root itself (the samples' zombies and alive)."""
        return self.of(row) == 1

    def deeper(self, row: ChildRecord) -> bool:
        """Held by a grandchild or deeper (the samples count these as descendant_zombies)."""
        return self.of(row) > 1


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """Exit to reap, over the children that exited during the record."""

    exited: int
    """Children that exited (or were zombies when first seen)."""
    measured: int
    """Lifetimes measured: exit and reap both timed (the reap up to the poller's latency)."""
    p50_s: float | None
    p99_s: float | None
    max_s: float | None
    bounded: int
    """Reaped, but only a bound on when (or the exit time unknown)."""
    bounded_max_s: float | None
    """The longest those may have lived as zombies: their bounds' largest (None: none
    had both an exit time and a bound)."""
    never_reaped: int
    """Still zombies when the record ended."""
    slowest_pid: int | None


def lifetime(row: ChildRecord) -> float | None:
    """Seconds from exit to reap, where both were timed."""
    if (
        row.exit_source in contract.MEASURED_EXITS
        and row.reap_source in contract.MEASURED_REAPS
        and row.exited_at is not None
        and row.reaped_at is not None
    ):
        return max(0.0, row.reaped_at - row.exited_at)
    return None


def lifetimes(rows: Iterable[ChildRecord]) -> Lifetimes:
    """Exit to reap of the children that exited during the record: zombies there already
    when it began (their exit time unknown) are :func:`zombies_before`'s."""
    exited = bounded = never = 0
    timed: list[tuple[float, int]] = []
    bounds: list[float] = []
    for row in rows:
        if row.exit_source == "" and row.reaped_at is None:
            continue  # alive at the end
        if there_before(row):
            continue
        exited += 1
        if row.reaped_at is None:
            never += 1
        elif (span := lifetime(row)) is not None:
            timed.append((span, row.pid))
        else:
            bounded += 1  # its reap (or its exit) only bounded
            if row.exited_at is not None:
                bounds.append(max(0.0, row.reaped_at - row.exited_at))
    timed.sort()
    spans = [span for span, _ in timed]
    return Lifetimes(
        exited=exited,
        measured=len(timed),
        p50_s=percentile(spans, 50),
        p99_s=percentile(spans, 99),
        max_s=spans[-1] if spans else None,
        bounded=bounded,
        bounded_max_s=max(bounds, default=None),
        never_reaped=never,
        slowest_pid=timed[-1][1] if timed else None,
    )


@dataclass(frozen=True, slots=True)
class Workers:
    """The root's own children seen as a pool: who was there, who left, who came."""

    pre_existing: int
    """Live children of the root there when the record began (its zombies then are
    :func:`zombies_before`'s)."""
    retired: int
    """Of those, exited during the record."""
    retired_reaped: int
    slowest_retired_reap_s: float | None
    kept: int
    """Of those, alive when the record ended."""
    forked: int
    """Children the root forked during the record."""
    forked_alive_at_end: int
    """Of those, alive when the record ended (replacements, or a pool that grew)."""


def workers(rows: Iterable[ChildRecord]) -> Workers:
    own = [row for row in rows if row.depth == 1]
    before = [row for row in own if row.origin == contract.PRE_EXISTING and not there_before(row)]
    retired = [row for row in before if row.exit_source != ""]
    reaps = [span for row in retired if (span := lifetime(row)) is not None]
    forked = [row for row in own if row.origin != contract.PRE_EXISTING]
    return Workers(
        pre_existing=len(before),
        retired=len(retired),
        retired_reaped=sum(row.reaped_at is not None for row in retired),
        slowest_retired_reap_s=max(reaps, default=None),
        kept=sum(_alive_at_end(row) for row in before),
        forked=len(forked),
        forked_alive_at_end=sum(_alive_at_end(row) for row in forked),
    )


@dataclass(frozen=True, slots=True)
class ZombiesBefore:
    """Zombies there when the record began: not the load's doing."""

    count: int
    left: int
    """Of those, still zombies at the end."""
    holders: list[tuple[int | None, int]]
    """(holder PID, zombies) of those left, most first."""


def zombies_before(rows: Iterable[ChildRecord]) -> ZombiesBefore:
    found = [row for row in rows if there_before(row)]
    left = [row for row in found if row.reaped_at is None]
    held = Counter(holder(row) for row in left)
    return ZombiesBefore(len(found), len(left), held.most_common())


def _alive_at_end(row: ChildRecord) -> bool:
    return row.exit_source == "" and row.reaped_at is None


def holder(row: ChildRecord) -> int | None:
    """Who held it as a zombie: whoever reaped it, else its adopter, else its parent."""
    if row.reaped_by is not None:
        return row.reaped_by
    if row.reaped_at is not None:
        return None  # reaped by someone the recorder could not name
    return row.adopted_by if row.adopted_by is not None else row.parent


def holders(
    rows: Sequence[ChildRecord], moment: float, root: int
) -> list[tuple[int | None, int, int]]:
    """(holder PID, depth of its zombies, zombies) at ``moment``, most zombies first; the
    depth is where the holder keeps them (:class:`Depths`: an orphan ``root`` adopted is
    ``root``'s child).

    A holder PID of None is one the recorder could not name (an adopter that reaped).
    """
    depths = Depths(rows, root)
    counts: Counter[tuple[int | None, int]] = Counter()
    for row in rows:
        died = exit_time(row)
        if died is None or died > moment or (row.reaped_at is not None and row.reaped_at <= moment):
            continue
        counts[(holder(row), depths.of(row))] += 1
    return sorted(
        ((pid, depth, n) for (pid, depth), n in counts.items()),
        key=lambda item: (-item[2], item[1]),
    )


def cross_check(
    rows: Sequence[ChildRecord],
    samples: Iterable[tuple[float, int]],
    window: float = SAMPLE_WINDOW_S,
) -> list[str]:
    """Every sample (time, zombies in the whole tree) that shows more zombies than the
    events do anywhere in [time, time + window]: each is a line saying so; none, none.

    The events count a zombie from its kernel-stamped exit until the poller saw its reap
    (late, never early), so a sampler reading the same tree can see fewer, never more.
    """
    series = steps(rows)
    times = [step.time for step in series]
    problems = []
    for moment, zombies in samples:
        now = bisect.bisect_right(times, moment) - 1  # the step in force at the moment
        until = bisect.bisect_right(times, moment + window)
        counts = [step.zombies for step in series[max(now, 0) : until]]
        most = max([*counts, 0] if now < 0 else counts)
        if zombies > most:
            problems.append(
                f"the sample at {moment:.3f} shows {zombies} zombies; the events, at most {most}"
            )
    return problems


def as_of(
    rows: Iterable[ChildRecord], moment: float, own_reaps_after: bool = False
) -> list[ChildRecord]:
    """The rows as the record stood at ``moment``: children that joined later left out,
    an exit, a reap or an adoption after it not yet happened (a zombie reaped later was a
    zombie then; a child that exited later was alive; an orphan's parent was alive).

    ``own_reaps_after``: a child that had exited by ``moment`` keeps a later reap by its
    own parent. A run interrupted at ``moment`` is judged that way: a child between its
    exit and its parent's wait at the Ctrl-C was in flight, not left a zombie."""
    kept = []
    for row in rows:
        joined = birth_time(row)
        if (row.seen_at if joined is None else joined) > moment:
            continue
        died = exit_time(row)
        if died is not None and died > moment:
            row = replace(row, exited_at=None, exit_source="", exit_code=None, exit_signal=None)
            row = replace(row, reaped_at=None, reap_source="", reaped_by=None)
        elif (
            row.reaped_at is not None
            and row.reaped_at > moment
            and not (own_reaps_after and row.reaped_by == row.parent)
        ):
            row = replace(row, reaped_at=None, reap_source="", reaped_by=None)
        if row.adopted_at is not None and row.adopted_at > moment:
            row = replace(row, adopted_by=None, adopted_at=None)
        kept.append(row)
    return kept


def summary_figures(rows: Sequence[ChildRecord], end: float, root: int) -> dict[str, Any]:
    """The figures an EventSummary keeps, of the tree of ``root`` as it stood at ``end``:
    counts then, the peak until then, lifetimes, workers. "direct" is what ``root`` holds
    itself, its orphans included (:class:`Depths`), "deeper" what its descendants hold."""
    rows = as_of(rows, end)
    depths = Depths(rows, root)
    series = steps(rows)
    top = peak_zombies(series)
    final = at(series, end)
    own, deeper_series = steps(rows, depths.direct), steps(rows, depths.deeper)
    own_final, deeper_final = at(own, end), at(deeper_series, end)
    before = zombies_before(rows)
    return {
        "forked": sum(row.origin == contract.FORKED for row in rows),
        "exited": sum(row.exited_at is not None for row in rows),
        "reaped": sum(row.reaped_at is not None for row in rows),
        "peak_zombies": top.zombies if top else 0,
        "peak_zombies_at": top.time if top and top.zombies else None,
        "final_live": final.live,
        "final_zombies": final.zombies,
        "final_zombie_holders": [
            {"pid": pid, "depth": depth, "zombies": n} for pid, depth, n in holders(rows, end, root)
        ],
        "direct": {
            "peak_zombies": max((step.zombies for step in own), default=0),
            "final_zombies": own_final.zombies,
            "peak_live": max((step.live for step in own), default=0),
            "final_live": own_final.live,
        },
        "deeper": {
            "peak_zombies": max((step.zombies for step in deeper_series), default=0),
            "final_zombies": deeper_final.zombies,
        },
        "zombies_before": {
            "count": before.count,
            "left": before.left,
            "holders": [{"pid": pid, "zombies": n} for pid, n in before.holders],
        },
        "lifetimes": asdict(lifetimes(rows)),
        "workers": asdict(workers(rows)),
    }


def server_figures(
    rows: Sequence[ChildRecord], server: int, until: float, is_root: bool
) -> dict[str, Any]:
    """The server's own figures where the record's root is not the server alone (PID 1 of
    its PID namespace: an init in front of it, or the server itself), from the rows whose
    parent is the server's host PID: scenario.json's ``events.server``.

    ``forks`` and ``reaps`` are over the whole record (its shutdown's reaps included),
    as the server's counters are; ``reaps_judged`` until ``until``, for a server that is
    PID 1 itself (``is_root``): the kernel reaps the zombies a dying PID 1 leaves, in its
    name, which no counter of the server counts. ``orphan_reaps_judged``: orphans it was
    handed and reaped itself (a PID 1 that waits for any child). ``final_zombies`` and
    ``final_live``: its own children at ``until``.
    """
    judged = as_of(rows, until)
    own = [row for row in judged if row.parent == server and row.adopted_by is None]
    now = at(steps(own), until)
    return {
        "pid": server,
        "is_root": is_root,
        "forks": sum(row.parent == server and row.forked_at is not None for row in rows),
        "reaps": sum(row.reaped_by == server for row in rows),
        "reaps_judged": sum(row.reaped_by == server for row in judged),
        "orphan_reaps_judged": sum(
            row.reaped_by == server and row.parent != server for row in judged
        ),
        "final_zombies": now.zombies,
        "final_live": now.live,
    }
