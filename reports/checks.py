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

from diagnostics.contract import ScenarioRecord

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
        measured."""
        final = record.final_sample or {}
        counters = record.server_counters or {}
        return cls(
            strategy=record.strategy,
            reaps_all=record.reaps_all,
            final_zombies=_count(final, "zombies"),
            final_alive=_count(final, "alive"),
            forked=_count(counters, "forked"),
            reaped=_count(counters, "reaped"),
            accepted=_count(counters, "accepted"),
            requests=_count(record.load or {}, "requests"),
            users=_count(record.asked or {}, "users"),
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
    )
    within = (reaped_at_most_forked, failed_forks_were_refused)  # of one moment, even cut short
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
    figures = (counts.strategy, final, alive, forked, reaped)
    if any(figure is None for figure in figures):
        return None
    expected = forked - reaped - alive
    sums = f"forked {forked} - reaped {reaped} - still running {alive}"
    if final == expected:
        return Check(True, f"final zombies {final} = {sums}")
    return Check(
        False,
        f"final zombies {final} != {sums} = {expected}:"
        " a child exited or was reaped after the final sample, or someone else reaped",
    )


def zombies_all_reaped(counts: Counts) -> Check | None:
    """A server whose strategy promises to reap every child must end with no zombies at all."""
    if not counts.reaps_all or counts.final_zombies is None:
        return None
    if counts.final_zombies == 0:
        return Check(True, "no zombies left at the end")
    return Check(
        False,
        f"{counts.final_zombies} zombies left at the end although the server reaps"
        f" (strategy {counts.strategy})",
    )


def reaped_at_most_forked(counts: Counts) -> Check | None:
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
