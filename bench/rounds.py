"""Alternating rounds and their summaries, shared by the sections.

Each round runs every contender once, in an order rotated from the round before,
so slow drifts of the machine (thermal, other tenants) and position effects (the
first run after start-up) fall on all contenders alike. Summaries are medians,
which one disturbed round cannot move far.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from bench.loadgen import LoadResult

T = TypeVar("T")


def rotated(items: Sequence[T], round_index: int) -> list[T]:
    """``items`` starting at position ``round_index`` (mod its length)."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def pair_ratios(
    numerators: Sequence[LoadResult], denominators: Sequence[LoadResult]
) -> list[float]:
    """Each round's rps ratio.

    The two runs of a round saw nearly the same machine; the ratio of two medians
    taken over different rounds would mix in how the machine drifted between them.
    """
    pairs = (ratio(a.rps, b.rps) for a, b in zip(numerators, denominators, strict=False))
    return [value for value in pairs if value is not None]


def paired_ratio(
    numerators: Sequence[LoadResult], denominators: Sequence[LoadResult]
) -> float | None:
    """Median over rounds of each round's rps ratio (see :func:`pair_ratios`)."""
    return median(pair_ratios(numerators, denominators))


CONFIDENCE = 0.95


def median_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """A CONFIDENCE interval for the median of what ``values`` were drawn from, free of
    any assumed distribution (order statistics: the count of values below the median
    is binomial with p = 1/2); None for fewer than six values, which cannot give one.

    A 2-CPU virtual machine's throughput swings by 5-10% between two runs of a few
    seconds, more than the few percent a target allows: the median alone can say
    "met" or "missed" by chance, and this says whether the rounds could tell.
    """
    ordered = sorted(values)
    count = len(ordered)
    below = 0  # values that may lie below the interval: P(Binomial(count, 1/2) <= below)
    tail = 0.0
    while True:
        tail += math.comb(count, below) / 2**count
        if tail > (1 - CONFIDENCE) / 2:
            break
        below += 1
    if below == 0:
        return None
    return ordered[below - 1], ordered[count - below]


def summarise(results: Sequence[LoadResult]) -> dict[str, Any]:
    """Medians of rps and latency over rounds, totals of requests and errors, every round."""
    return {
        "rps": median(r.rps for r in results),
        "p50_ms": median(r.p50_ms for r in results),
        "p99_ms": median(r.p99_ms for r in results),
        "requests": sum(r.requests for r in results),
        "errors": sum(r.errors for r in results),
        "rounds": [asdict(r) for r in results],
    }


def target(ratios: Sequence[float], minimum: float) -> dict[str, Any]:
    """The median of paired ratios against its target, with its interval.

    ``met`` is the median's verdict (None when nothing was measured); ``shown`` says
    whether the interval lies wholly on that side of the target (None: too few rounds
    for an interval), so a verdict the noise could have made is not taken for one.
    """
    value = median(ratios)
    interval = median_interval(ratios)
    met = None if value is None else value >= minimum
    shown = None
    if interval is not None and met is not None:
        shown = interval[0] >= minimum if met else interval[1] < minimum
    return {
        "ratio": value,
        "target": minimum,
        "met": met,
        "interval": None if interval is None else list(interval),
        "confidence": CONFIDENCE,
        "pairs": list(ratios),
        "shown": shown,
    }
