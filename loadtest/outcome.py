"""Whether a load did what was asked: a run that did not load the server is not ok.

Locust killed or crashed (not stopped by the harness), no request completed, or
more failures than ``--max-failures`` allows: each is a failed scenario and exit 1,
with one line saying why. Requests refused after the zombie cap was reached
(``refused_at_cap``, counted by the cap) are what a capped run expects, not failures.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from loadtest.errors import FailedRequests, HarnessError


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


def judge(outcome: LoadOutcome, max_failures: float) -> None:
    """Return if the load was a load; raise HarnessError (FailedRequests) saying why not."""
    code, requests = outcome.locust_exit, outcome.requests
    ended_early = code not in (0, None) and not outcome.stopped_by_harness
    if ended_early and code is not None and code < 0:
        done = "no request recorded" if requests is None else f"after {requests} requests"
        raise HarnessError(
            f"Locust was killed by {signal.Signals(-code).name} before its run time was"
            f" over ({done}); see locust.log"
        )
    if requests is None or ended_early:
        raise HarnessError(f"Locust failed (exit code {code}): {outcome.locust_last_line}")
    if requests == 0:
        raise HarnessError(f"Locust completed no request: {outcome.locust_last_line}")
    counted = max((outcome.failures or 0) - (outcome.refused_at_cap or 0), 0)
    if counted * 100 > max_failures * requests:
        reason = outcome.top_reason
        top = f": most often {reason[0]!r} ({reason[1]})" if reason else ""
        raise FailedRequests(
            f"{counted} of {requests} requests failed ({counted / requests:.0%}, more than"
            f" --max-failures {max_failures:g}%){top}"
        )
