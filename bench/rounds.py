"""Alternating rounds and their summaries, shared by the sections.

Each round runs every contender once, in an order rotated from the round before,
so slow drifts of the machine (thermal, other tenants) and position effects (the
first run after start-up) fall on all contenders alike. Summaries are medians,
which one disturbed round cannot move far.
"""

from __future__ import annotations

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


def paired_ratio(
    numerators: Sequence[LoadResult], denominators: Sequence[LoadResult]
) -> float | None:
    """Median over rounds of each round's rps ratio.

    The two runs of a round saw nearly the same machine; the ratio of two medians
    taken over different rounds would mix in how the machine drifted between them.
    """
    return median(ratio(a.rps, b.rps) for a, b in zip(numerators, denominators, strict=False))


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


def target(value: float | None, minimum: float) -> dict[str, Any]:
    """A ratio against its target; ``met`` is None when the ratio could not be measured."""
    return {"ratio": value, "target": minimum, "met": None if value is None else value >= minimum}
