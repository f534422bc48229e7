"""Locust's own CSV files (`--csv PREFIX --csv-full-history`) read into totals and a time series.

Only the "Aggregated" rows matter here: they are Locust's totals over every endpoint. The
stats file is written when Locust stops, so a run cut short may only have the history
file; `totals_from_history` recovers the counts from its last row.

The request count has one source, the harness's own timeline (`load_totals`): ten rows a
second on the samples' clock, so it is right at any moment (an interrupt, the cap) and
for a Locust killed between two writes of its stats; Locust's stats give the latencies.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from diagnostics.contract import Source
from reports.files import Table
from reports.series import first_finite, last_finite, optional, optional_int

AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class LocustTotals:
    """Whole-run figures; None where Locust did not report one."""

    requests: int | None
    failures: int | None
    rps: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class LocustHistory:
    """Locust's once-a-second aggregated snapshots; `timestamp` is unix seconds."""

    timestamp: np.ndarray
    users: np.ndarray
    rps: np.ndarray
    p50_ms: np.ndarray
    p95_ms: np.ndarray
    total_requests: np.ndarray
    total_failures: np.ndarray


def totals_from_stats(table: Table) -> LocustTotals | None:
    """The Aggregated row of locust_stats.csv, or None when Locust did not write one."""
    rows = table.where("Name", AGGREGATED)
    if not len(rows):
        return None

    def last(column: str) -> float:
        return float(rows.numbers(column)[-1])

    return LocustTotals(
        requests=optional_int(last("Request Count")),
        failures=optional_int(last("Failure Count")),
        rps=optional(last("Requests/s")),
        p50_ms=optional(last("50%")),
        p95_ms=optional(last("95%")),
        p99_ms=optional(last("99%")),
    )


def history_from_table(table: Table) -> LocustHistory | None:
    """The Aggregated rows of locust_stats_history.csv, or None when there are none."""
    rows = table.where("Name", AGGREGATED)
    if not len(rows):
        return None
    return LocustHistory(
        timestamp=rows.numbers("Timestamp"),
        users=rows.numbers("User Count"),
        rps=rows.numbers("Requests/s"),
        p50_ms=rows.numbers("50%"),
        p95_ms=rows.numbers("95%"),
        total_requests=rows.numbers("Total Request Count"),
        total_failures=rows.numbers("Total Failure Count"),
    )


def totals_from_history(history: LocustHistory) -> LocustTotals:
    """Counts from the last history row, for a run whose locust_stats.csv was never written.

    Percentiles stay None: the history only has them per window, not for the whole run.
    """
    requests = optional_int(last_finite(history.total_requests))
    span = last_finite(history.timestamp) - first_finite(history.timestamp)
    rps = requests / span if requests is not None and span > 0 else None
    return LocustTotals(
        requests=requests,
        failures=optional_int(last_finite(history.total_failures)),
        rps=rps,
        p50_ms=None,
        p95_ms=None,
        p99_ms=None,
    )


def totals_from_timeline(table: Table, until: float | None = None) -> LocustTotals | None:
    """Requests and failures completed as of the timeline's last row (at or before ``until``,
    unix time), and the rate over the rows where requests completed; None without a row.
    Latencies are not in the timeline (None)."""
    t, requests = table.numbers("time"), table.numbers("requests")
    usable = np.isfinite(t) & np.isfinite(requests)
    if until is not None:
        usable &= t <= until
    if not usable.any():
        return None
    t, requests, failures = t[usable], requests[usable], table.numbers("failures")[usable]
    grew = np.nonzero(np.diff(requests) > 0)[0]
    span = float(t[grew[-1] + 1] - t[0]) if grew.size else 0.0
    count = int(requests[-1])
    return LocustTotals(
        requests=count,
        failures=optional_int(float(failures[-1])),
        rps=count / span if span > 0 else None,
        p50_ms=None,
        p95_ms=None,
        p99_ms=None,
    )


def load_totals(
    timeline: Table | None,
    stats: Table | None,
    history: LocustHistory | None,
    until: float | None = None,
) -> tuple[LocustTotals | None, Source | None]:
    """The load's figures and where its counts come from: requests, failures and rate from
    the request timeline (as of ``until``), latencies from Locust's stats; without a
    timeline, Locust's stats, then its history (a Locust killed before it wrote stats)."""
    from_stats = totals_from_stats(stats) if stats is not None else None
    counted = totals_from_timeline(timeline, until) if timeline is not None else None
    if counted is not None:
        if from_stats is not None:
            counted = replace(
                counted, p50_ms=from_stats.p50_ms, p95_ms=from_stats.p95_ms,
                p99_ms=from_stats.p99_ms,
            )  # fmt: skip
        return counted, Source.TIMELINE
    if from_stats is not None:
        return from_stats, Source.LOCUST_STATS
    if history is not None:
        return totals_from_history(history), Source.LOCUST_HISTORY
    return None, None


# Locust files a failure under the repr of its exception; a reason given with
# response.failure() arrives wrapped as CatchResponseError('...').
_WRAPPED = re.compile(r"^CatchResponseError\((?P<quoted>(['\"]).*\2)\)$", re.DOTALL)


def failure_reason(error: str) -> str:
    """The reason as the user wrote it, without Locust's exception wrapper."""
    match = _WRAPPED.match(error.strip())
    if match is None:
        return error.strip()
    try:
        return str(ast.literal_eval(match.group("quoted")))
    except (ValueError, SyntaxError):
        return error.strip()


def failure_reasons(table: Table) -> list[tuple[str, int]]:
    """locust_failures.csv as (reason, occurrences), most frequent first, over all names."""
    if not (table.has("Error") and table.has("Occurrences")):
        return []
    counts: Counter[str] = Counter()
    for error, occurrences in zip(table.texts("Error"), table.numbers("Occurrences"), strict=True):
        if np.isfinite(occurrences):
            counts[failure_reason(error)] += int(occurrences)
    return counts.most_common()
