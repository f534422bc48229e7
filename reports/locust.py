"""Locust's own CSV files (`--csv PREFIX --csv-full-history`) read into totals and a time series.

Only the "Aggregated" rows matter here: they are Locust's totals over every endpoint. The
stats file is written when Locust stops, so a run cut short may only have the history
file; `totals_from_history` recovers the counts from its last row.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

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
