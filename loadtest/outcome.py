"""Whether a load did what was asked: a run that did not load the server is not ok.

Locust killed, crashed or ended before its run time by anyone but the harness (Locust
exits 0 on SIGTERM, so its run time says what its exit code does not), a worker of it
lost, no request completed, or more failures than ``--max-failures`` allows: each is a
failed scenario and exit 1, with one line saying why. Requests refused after the zombie
cap was reached (``refused_at_cap``, counted by the cgroup) are what a capped run
expects, not failures; nor is what the load did once the cap had frozen it. A rate far
below the one asked is a warning (:func:`rate_warning`).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from loadtest.errors import FailedRequests, HarnessError

LOW_RATE = 0.8
"""An achieved request rate below this share of --rate is a warning: the server was not
loaded as asked."""


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    requests: int | None
    """Requests Locust completed (None: it wrote no figures)."""
    failures: int | None
    top_reason: tuple[str, int] | None
    """The most frequent failure reason and its count."""
    locust_exit: int | None
    """Locust's exit code; negative for a signal, None if it could not be waited for."""
    stopped_by_harness: bool
    """The harness stopped Locust itself (cap reached, overran): its exit code says nothing."""
    refused_at_cap: int | None = None
    locust_last_line: str = "no output"
    cap_reached: bool = False
    """The zombie cap froze the load: what became of Locust after that is the cap's doing."""
    failures_at_cap: int | None = None
    """Failures completed up to the moment the cap was reached (the request timeline)."""
    ran_s: float | None = None
    """Seconds from Locust's start to its exit."""
    duration: float | None = None
    """Seconds of load asked (--duration): a Locust that exits sooner was ended early."""
    lost_workers: tuple[str, ...] = ()
    """Each Locust worker lost during the load, as "PID N (how it ended)"."""


def judge(outcome: LoadOutcome, max_failures: float) -> str | None:
    """Return if the load was a load (with a warning, or None); raise HarnessError
    (FailedRequests) saying why not."""
    code, requests = outcome.locust_exit, outcome.requests
    done = "no request recorded" if requests is None else f"{requests} requests completed"
    if outcome.lost_workers:
        lost = ", ".join(outcome.lost_workers)
        raise HarnessError(
            f"Locust lost {len(outcome.lost_workers)} worker process(es) during the load"
            f" ({lost}; {done}): the load was not the one asked; see locust.log"
        )
    warning = None
    if outcome.stopped_by_harness:
        pass  # its exit code says nothing
    elif outcome.cap_reached:  # frozen at the cap: the load was over
        if code is not None and code < 0:
            warning = (
                f"Locust was killed by {_signal_name(code)} after the zombie cap had frozen"
                " the load"
            )
    else:
        ran = "" if outcome.ran_s is None else f" after {outcome.ran_s:.1f} s"
        if code is not None and code < 0:
            raise HarnessError(
                f"Locust was killed by {_signal_name(code)}{ran}, before its run time was"
                f" over ({done}); see locust.log"
            )
        if requests is None or code not in (0, None):
            raise HarnessError(f"Locust failed (exit code {code}): {outcome.locust_last_line}")
        if _ended_early(outcome):
            raise HarnessError(
                f"Locust ended{ran} of its {outcome.duration:g} s run, not stopped by the"
                f" harness ({done}); its last line: {outcome.locust_last_line}"
            )
    if requests is None:
        raise HarnessError(f"Locust failed (exit code {code}): {outcome.locust_last_line}")
    if requests == 0:
        raise HarnessError(f"Locust completed no request: {outcome.locust_last_line}")
    counted = max((outcome.failures or 0) - (outcome.refused_at_cap or 0), 0)
    if outcome.failures_at_cap is not None:
        counted = min(counted, outcome.failures_at_cap)
    if counted * 100 > max_failures * requests:
        reason = outcome.top_reason
        top = f": most often {reason[0]!r} ({reason[1]})" if reason else ""
        raise FailedRequests(
            f"{counted} of {requests} requests failed ({counted / requests:.0%}, more than"
            f" --max-failures {max_failures:g}%){top}"
        )
    return warning


def _ended_early(outcome: LoadOutcome) -> bool:
    return (
        outcome.ran_s is not None
        and outcome.duration is not None
        and outcome.ran_s < outcome.duration
    )


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def rate_warning(achieved: float | None, asked: float, users: int) -> str | None:
    """A warning when the load ran well below --rate (0 asks for no rate: no warning)."""
    if not asked or achieved is None or achieved >= LOW_RATE * asked:
        return None
    return (
        f"the load ran at {achieved:.0f} requests/s, {achieved / asked:.0%} of the --rate"
        f" {asked:g} asked (below {LOW_RATE:.0%}): the server answered more slowly than"
        f" {users} users can keep pace with, or Locust was short of CPU"
    )
