"""How a figure is said in a verdict: counts with their noun, shares, short durations.

Shared by the verdicts judged from samples (reports/verdicts.py) and from the event
record (reports/lifetime_verdicts.py), so both say a figure the same way.
"""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def percent(share: float) -> str:
    """43% for a share of 0.43; one decimal below 1% so a small leak does not read as 0%."""
    value = share * 100
    return f"{value:.0f}%" if value >= 1 or value == 0 else f"{value:.1f}%"


def duration(seconds: float) -> str:
    """A lifetime as a person reads it: 0.15 ms, 2.1 ms, 84 ms, 0.84 s, 13 s."""
    if seconds < 0.01:
        return f"{seconds * 1000:.2g} ms"
    if seconds < 0.1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.2g} s"
    return f"{seconds:.0f} s"
