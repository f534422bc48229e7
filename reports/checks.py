"""Cross-checks between what the sampler saw, what the server counted and what Locust counted.

Three witnesses of the same run must agree; when they do not, the report says so as a
warning rather than picking one. A check whose figures were not measured is skipped, not
failed: missing files are marked elsewhere.

The checks of a scenario are built here once, from its record (:func:`scenario_checks`):
the harness stores them in scenario.json as the scenario ends, and reports builds the
same ones from the scenario.json it reads.

No check compares figures taken on both sides of an interrupt: an interrupted run's
final sample is the last one before the Ctrl-C, with requests in flight, while the
server's counters are read after its shutdown, so only the checks within one moment
stand (the server's own counters against each other).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from diagnostics.contract import EventSummary, ScenarioRecord

# Locust counts a request when its response arrives and the server when it accepts the
# connection, so up to one request per user can be in flight when either stops counting.
MIN_REQUEST_SLACK = 5
REQUEST_SLACK_SHARE = 0.01


@dataclass(frozen=True)
class Check:
    """One comparison and its outcome, in a sentence that explains a mismatch."""

    ok: bool
    text: str

    def to_json(self) -> dict[str, Any]:
        """One entry of scenario.json's ``cross_checks`` and summary.json's ``checks``."""
        return asdict(self)


@dataclass(frozen=True)
class Counts:
    """The figures the checks compare; None where a file did not provide one."""

    strategy: str | None = None
    reaps_all: bool | None = None
    """The strategy promises to leave no zombie (scenario.json's reaps_all)."""
    final_zombies: int | None = None
    final_alive: int | None = None
    forked: int | None = None
    reaped: int | None = None
    accepted: int | None = None
    requests: int | None = None
    users: int | None = None
    server_pid1: bool = False
    """The server ran as PID 1 of its PID namespace, without an init: it is handed every
    orphan of the namespace, children it did not fork."""
    reaped_at_shutdown: int | None = None
    events: EventSummary | None = None
    """The event record's summary (scenario.json's ``events``), None without one."""
    fork_failures: int | None = None
    """Forks the server counted as failed."""
    forks_refused: int | None = None
    """Forks the server's pids cgroup refused at its limit (the kernel's count)."""
    interrupted: bool = False
    """The run was cut short: the final sample and the counters are of different moments."""

    @classmethod
    def of(cls, record: ScenarioRecord) -> Counts:
        """The figures of a scenario's record: the final sample (taken once the server
        settled, before it stopped), the server's final counters, Locust's totals and the
        users asked for. A value of another type (a file from anywhere) counts as not
        measured. Where an init ran as PID 1 in front of the server, the final sample is
        the init's: the server's own (``final_server_sample``) is compared instead."""
        init = (record.pid1 or {}).get("init")
        behind_init = init is not None and init != "none"
        final = (record.final_server_sample if behind_init else record.final_sample) or {}
        counters = record.server_counters or {}
        return cls(
            server_pid1=init == "none",
            strategy=record.strategy,
            reaps_all=record.reaps_all,
            final_zombies=_count(final, "zombies"),
            final_alive=_count(final, "alive"),
            forked=_count(counters, "forked"),
            reaped=_count(counters, "reaped"),
            accepted=_count(counters, "accepted"),
            requests=_count(record.load or {}, "requests"),
            users=_count(record.asked or {}, "users"),
            reaped_at_shutdown=_count(counters, "reaped_at_shutdown"),
            events=EventSummary.checked(record.events)[0] if record.events else None,
            fork_failures=_count(counters, "fork_failures"),
            forks_refused=_count(record.cgroup or {}, "forks_refused"),
            interrupted=record.interrupted_at is not None,
        )


def _count(figures: dict[str, Any], key: str) -> int | None:
    value = figures.get(key)
    if isinstance(value, float) and value.is_integer():  # JSON may write 2 as 2.0
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def scenario_checks(record: ScenarioRecord) -> list[Check]:
    """The cross-checks of one scenario, from its record alone."""
    return cross_checks(Counts.of(record))


def cross_checks(counts: Counts) -> list[Check]:
    every = (
        zombies_match_counters,
        zombies_all_reaped,
        reaped_at_most_forked,
        requests_match_accepted,
        failed_forks_were_refused,
        forks_match_counter,
        reaps_match_counters,
        zombies_left_match_counters,
        samples_within_events,
    )
    # Of one moment, even cut short: the counters against each other, the record's forks
    # and reaps over its whole length against the counters printed at the server's end,
    # the samples up to the interrupt against the events at their moments.
    within = (
        reaped_at_most_forked,
        failed_forks_were_refused,
        forks_match_counter,
        reaps_match_counters,
        samples_within_events,
    )
    checks = [check(counts) for check in every if not counts.interrupted or check in within]
    return [check for check in checks if check is not None]


def zombies_match_counters(counts: Counts) -> Check | None:
    """Every child forked and not reaped is, at the final sample, a zombie or still running.

    The final sample is taken while the server still serves, before its shutdown
    sweep, and the server's ``reaped`` counts only what it reaped while serving
    (the sweep's are ``reaped_at_shutdown``), so the identity is exact for every
    strategy whose parent counts its reaps. Where the kernel reaps (SIGCHLD
    ignored) the server reports ``reaped`` as null: no check.
    """
    final, alive = counts.final_zombies, counts.final_alive
    forked, reaped = counts.forked, counts.reaped
    if counts.strategy is None or final is None or alive is None:
        return None
    if forked is None or reaped is None:
        return None
    if counts.server_pid1:
        return zombies_cover_counters(final, alive, forked, reaped)
    return _left(
        "final zombies",
        final,
        forked,
        reaped,
        alive,
        "a child exited or was reaped after the final sample, or someone else reaped",
    )


def _left(
    what: str, left: int, forked: int, reaped: int, running: int, why: str, orphans: int = 0
) -> Check:
    """Zombies left against what the server's counters leave: forked - reaped - running
    (+ the orphans among its reaps, for a server that is PID 1)."""
    expected = forked - reaped + orphans - running
    handed = f" + orphans it reaped {orphans}" if orphans else ""
    sums = f"forked {forked} - reaped {reaped}{handed} - still running {running}"
    if left == expected:
        return Check(True, f"{what} {left} = {sums}")
    return Check(False, f"{what} {left} != {sums} = {expected}: {why}")


def zombies_cover_counters(final: int, alive: int, forked: int, reaped: int) -> Check:
    """The server as PID 1: its children forked and not reaped are among the zombies and the
    children running at the final sample, and the rest of those are orphans.

    PID 1 of a namespace is handed every orphan there, children it did not fork, so the
    identity of :func:`zombies_match_counters` becomes a bound. A server that waits with
    waitpid(-1) reaps the orphans too, and its ``reaped`` passes its ``forked``.
    """
    held = final + alive
    sums = f"final zombies {final} + still running {alive}"
    if reaped > forked:
        return Check(
            True,
            f"reaped {reaped} > forked {forked}: as PID 1 the server also reaped orphans it was"
            f" handed, which it did not fork ({sums})",
        )
    own = forked - reaped
    if held >= own:
        return Check(
            True,
            f"{sums} >= forked {forked} - reaped {reaped}: as PID 1 the server is also handed"
            f" orphans it did not fork, {held - own} of them here",
        )
    return Check(
        False,
        f"{sums} < forked {forked} - reaped {reaped} = {own}:"
        " a child exited or was reaped after the final sample, or someone else reaped",
    )


def zombies_all_reaped(counts: Counts) -> Check | None:
    """A server whose strategy promises to reap every child must end with no zombies at all
    (as PID 1: none of its own children; the orphans it is handed are not its promise)."""
    if not counts.reaps_all or counts.final_zombies is None:
        return None
    if counts.server_pid1:
        return own_children_reaped(counts)
    if counts.final_zombies == 0:
        return Check(True, "no zombies left at the end")
    return Check(
        False,
        f"{counts.final_zombies} zombies left at the end although the server reaps"
        f" (strategy {counts.strategy})",
    )


def own_children_reaped(counts: Counts) -> Check | None:
    """The server as PID 1, whose strategy reaps every child: none of the children it forked
    is left a zombie (forked - reaped - still running is at most 0); the zombies it holds
    are orphans it was handed."""
    final, alive = counts.final_zombies, counts.final_alive
    forked, reaped = counts.forked, counts.reaped
    if final is None or alive is None or forked is None or reaped is None:
        return None
    left = forked - reaped - alive
    sums = f"forked {forked} - reaped {reaped} - still running {alive}"
    if left > 0:
        return Check(
            False,
            f"at least {left} of its own children left as zombies ({sums}) although the server"
            f" reaps (strategy {counts.strategy})",
        )
    if forked > reaped:  # not all reaped yet, but no more than are still running
        return Check(
            True,
            f"forked {forked} - reaped {reaped} = {forked - reaped} of its own children not"
            f" reaped yet, no more than the {alive} still running",
        )
    text = f"none of its own children left unreaped (forked {forked}, reaped {reaped})"
    if final:
        text += f"; the {final} zombies at the end are orphans it was handed as PID 1"
    return Check(True, text)


def reaped_at_most_forked(counts: Counts) -> Check | None:
    """(As PID 1, reaping orphans too is no fault: :func:`zombies_cover_counters` says so.)"""
    if counts.server_pid1:
        return None
    if counts.forked is None or counts.reaped is None or counts.reaped <= counts.forked:
        return None
    return Check(False, f"server reaped {counts.reaped} children but forked only {counts.forked}")


def request_slack(counts: Counts) -> int:
    """How far Locust and the server may disagree: requests in flight when counting stopped."""
    share = round((counts.requests or 0) * REQUEST_SLACK_SHARE)
    return max(MIN_REQUEST_SLACK, counts.users or 0, share)


def requests_match_accepted(counts: Counts) -> Check | None:
    """Locust's request count against the connections the server accepted."""
    if counts.requests is None or counts.accepted is None:
        return None
    requests, accepted = counts.requests, counts.accepted
    if requests == accepted:
        return Check(True, f"Locust requests {requests} = server accepted {accepted}")
    gap = abs(requests - accepted)
    if requests > accepted:
        why = "failed before the server accepted them (refused or reset)"
        text = f"Locust counted {requests} requests, server accepted {accepted}: {gap} {why}"
    else:
        why = "in flight when Locust stopped counting"
        text = f"server accepted {accepted} connections, Locust counted {requests}: {gap} {why}"
    return Check(gap <= request_slack(counts), text)


def _exact(events: EventSummary | None, *figures: str) -> EventSummary | None:
    """The event summary where each of ``figures`` ("forks", "reaps") is exact: from its
    kernel source, nothing sampled, no error; else None (no check)."""
    if events is None or events.errors or not events.figures:
        return None
    return None if any(figure in events.sampled for figure in figures) else events


@dataclass(frozen=True)
class ServerEvents:
    """The server's own figures in an event record: the root's where the root is the
    server, else the record's ``server`` (the root is PID 1 of the server's namespace: an
    init in front of it, or the server itself, which is also handed orphans)."""

    forks: int | None
    reaps: int | None
    """Reaps by the server: over the whole record, shutdown included; for a server that
    is PID 1 itself, while it served (what its ``reaped`` counts; the kernel reaps what a
    dying PID 1 leaves, in its name)."""
    while_serving: bool
    orphan_reaps: int
    """Orphans it was handed as PID 1 and reaped itself (its ``reaped`` counts them)."""
    final_zombies: int | None
    """Its own children left zombies, and those still running, when it was judged."""
    final_live: int | None

    @classmethod
    def of(cls, events: EventSummary) -> ServerEvents:
        server = events.server
        if isinstance(server, dict):
            is_root = server.get("is_root") is True
            return cls(
                forks=_count(server, "forks"),
                reaps=_count(server, "reaps_judged" if is_root else "reaps"),
                while_serving=is_root,
                orphan_reaps=_count(server, "orphan_reaps_judged") or 0,
                final_zombies=_count(server, "final_zombies"),
                final_live=_count(server, "final_live"),
            )
        direct = events.figures.get("direct")
        direct = direct if isinstance(direct, dict) else {}
        return cls(
            forks=events.root_forks,
            reaps=events.root_reaps,
            while_serving=False,
            orphan_reaps=0,
            final_zombies=_count(direct, "final_zombies"),
            final_live=_count(direct, "final_live"),
        )


def forks_match_counter(counts: Counts) -> Check | None:
    """Every fork the server counted is a fork event of the kernel, and no more."""
    events = _exact(counts.events, "forks")
    if events is None or counts.forked is None:
        return None
    forks = ServerEvents.of(events).forks
    if forks is None:
        return None
    text = f"fork events {forks} {{}} server forked {counts.forked}"
    if forks == counts.forked:
        return Check(True, text.format("="))
    return Check(False, text.format("!=") + ": the record or the server's counter missed some")


def reaps_match_counters(counts: Counts) -> Check | None:
    """Every child the server counted as reaped, while serving and at its shutdown, was
    seen reaped by it (its pidfd hung up while it held the child), and no more. A server
    that is PID 1 itself is compared while it served (its ``reaped``): as PID 1 exits the
    kernel reaps, in its name, every zombie it leaves, which no counter of the server
    counts; that comparison ends at the judgement, so not across an interrupt."""
    events = _exact(counts.events, "forks", "reaps")
    if events is None or counts.reaped is None:
        return None
    server = ServerEvents.of(events)
    if server.reaps is None or (server.while_serving and counts.interrupted):
        return None
    if server.while_serving:
        total, sums, what = counts.reaped, f"reaped {counts.reaped}", "while serving (events)"
    elif counts.reaped_at_shutdown is None:
        return None
    else:
        total = counts.reaped + counts.reaped_at_shutdown
        sums = f"reaped {counts.reaped} + at shutdown {counts.reaped_at_shutdown}"
        what = "(events)"
    if server.reaps == total:
        return Check(True, f"reaps by the server {what} {server.reaps} = {sums}")
    return Check(
        False,
        f"reaps by the server {what} {server.reaps} != {sums} = {total}:"
        " the record or the server's counter missed some",
    )


def zombies_left_match_counters(counts: Counts) -> Check | None:
    """The server's own children never reaped when it was judged are exactly those it
    forked and did not reap, less those still running (both counts of the record at that
    moment). A server that is PID 1 also reaps orphans it was handed, which its ``reaped``
    counts: those it reaped (events) are added back."""
    events = _exact(counts.events, "forks", "exits", "reaps")
    if events is None or counts.forked is None or counts.reaped is None:
        return None
    server = ServerEvents.of(events)
    left, running = server.final_zombies, server.final_live
    if left is None or running is None:
        return None
    return _left(
        "zombies left (events)",
        left,
        counts.forked,
        counts.reaped,
        running,
        "a child changed between the end of the judgement and the server's stop, or someone"
        " else reaped",
        orphans=server.orphan_reaps,
    )


def samples_within_events(counts: Counts) -> Check | None:
    """No sample may show more zombies than the event record at its moment: the events
    count each zombie from its exit (kernel time) until its reap was seen (late, never
    early), so a sampler reading the same tree can see fewer, never more."""
    found = counts.events.samples_check if counts.events is not None else None
    if not isinstance(found, dict):
        return None
    samples, above = found.get("samples"), found.get("above_events")
    if not isinstance(samples, int) or not isinstance(above, int) or not samples:
        return None
    if not above:
        return Check(True, f"no sample of {samples} shows more zombies than the events")
    first = found.get("first") or []
    example = f": {first[0]}" if first and isinstance(first[0], str) else ""
    return Check(False, f"{above} of {samples} samples show more zombies than the events{example}")


def failed_forks_were_refused(counts: Counts) -> Check | None:
    """The server's failed forks against those its pids cgroup refused at the cap.

    Under a cgroup every fork the server saw fail should be one the kernel refused at
    pids.max; more failures than refusals failed for another reason (the machine short of
    PIDs or memory), and the requests they failed were not refused at the cap.
    """
    failures, refused = counts.fork_failures, counts.forks_refused
    if failures is None or refused is None:
        return None
    if failures == refused:
        return Check(True, f"server's failed forks {failures} = forks its cgroup refused {refused}")
    if failures > refused:
        why = "failed elsewhere than at the cap (the machine short of PIDs or memory?)"
    else:
        why = "refused forks the server did not count"
    return Check(
        False,
        f"the server's fork() failed {failures} times, its cgroup refused {refused}:"
        f" {abs(failures - refused)} {why}",
    )
