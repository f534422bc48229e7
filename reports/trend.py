"""Which way a sampled count is going, in words that match its curve.

A watch's verdict is read by someone deciding whether a process leaks. A fit over the
whole watch (or its later half) calls a count that rose to 50 and then held "shrinking",
and a count flat for the last 4 s "growing". So the direction is measured over the end of
the watch only (its last quarter, and at least a few seconds), and what came before is
said separately: "rose to 50, then held".

Pure functions over plain sequences, tested on synthetic curves (tests/test_reports_trend.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

RECENT_SHARE = 0.25
"""The end of the watch the direction is measured over, as a share of its length..."""
RECENT_MIN_S = 3.0
"""...and at least this many seconds of it (the whole watch when shorter)."""
WHOLE = 1.0
"""A change smaller than one whole process over a stretch is no change."""


@dataclass(frozen=True, slots=True)
class Trend:
    final: int
    direction: str
    """"rising", "falling", "flat", "rose then held" or "fell then held"."""
    per_s: float
    """Slope over the recent stretch (processes per second); 0 when flat."""
    recent_s: float
    """How many seconds at the end the direction was measured over."""


def _slope(t: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope; a fit, so one odd sample at either end does not decide it."""
    n = len(t)
    mean_t, mean_v = sum(t) / n, sum(values) / n
    spread = sum((x - mean_t) ** 2 for x in t)
    if spread == 0:
        return 0.0
    return sum((x - mean_t) * (y - mean_v) for x, y in zip(t, values, strict=True)) / spread


def trend(t: Sequence[float], values: Sequence[float]) -> Trend | None:
    """The trend of a sampled count; None when fewer than two samples were measured."""
    pairs = [
        (x, y) for x, y in zip(t, values, strict=True) if math.isfinite(x) and math.isfinite(y)
    ]
    if len(pairs) < 2:
        return None
    times = [x for x, _ in pairs]
    counts = [y for _, y in pairs]
    span = times[-1] - times[0]
    window = min(span, max(RECENT_SHARE * span, RECENT_MIN_S))
    start = times[-1] - window
    recent = [(x, y) for x, y in pairs if x >= start]
    early = [y for x, y in pairs if x <= times[0] + window]
    final = int(counts[-1])
    slope = _slope([x for x, _ in recent], [y for _, y in recent]) if len(recent) > 1 else 0.0
    if abs(slope) * window >= WHOLE:
        return Trend(final, "rising" if slope > 0 else "falling", slope, window)
    before = sum(early) / len(early)
    now = sum(y for _, y in recent) / len(recent)
    if window < span and now - before >= WHOLE:
        return Trend(final, "rose then held", 0.0, window)
    if window < span and before - now >= WHOLE:
        return Trend(final, "fell then held", 0.0, window)
    return Trend(final, "flat", 0.0, window)


def per_time(per_s: float) -> str:
    """+2.5/s, or per minute when slower than one every ten seconds."""
    if abs(per_s) >= 0.1:
        return f"{per_s:+.1f}/s"
    return f"{per_s * 60:+.1f}/min"


def describe(found: Trend, noun: str = "zombie") -> str:
    """The trend in words: "12 zombies, rising +0.5/s over the last 5 s", "rose to 50
    zombies, then held for the last 4 s", "3 zombies, flat"."""
    count = f"{found.final} {noun}" + ("" if found.final == 1 else "s")
    last = f"the last {found.recent_s:.0f} s"
    if found.direction in ("rising", "falling"):
        return f"{count}, {found.direction} {per_time(found.per_s)} over {last}"
    if found.direction == "rose then held":
        return f"rose to {count}, then held for {last}"
    if found.direction == "fell then held":
        return f"fell to {count}, then held for {last}"
    return f"{count}, flat"
