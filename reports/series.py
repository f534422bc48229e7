"""Small reductions over sampled series, where NaN means "not measured".

Samples and Locust snapshots both have holes (a blank cell, Locust's "N/A"); every figure
in the report is taken through these helpers so a hole never becomes a number.
"""

from __future__ import annotations

import math

import numpy as np


def finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def first_finite(values: np.ndarray) -> float:
    found = finite(values)
    return float(found[0]) if found.size else math.nan


def last_finite(values: np.ndarray) -> float:
    found = finite(values)
    return float(found[-1]) if found.size else math.nan


def peak(values: np.ndarray) -> float:
    found = finite(values)
    return float(found.max()) if found.size else math.nan


def optional(value: float) -> float | None:
    """None for NaN, so an unmeasured figure stays visibly unmeasured (null in JSON)."""
    return None if math.isnan(value) else value


def optional_int(value: float) -> int | None:
    return None if math.isnan(value) else int(round(value))


def time_weights(t: np.ndarray) -> np.ndarray:
    """How long each sample stands for: half the gap before it plus half the gap after.

    Samples are taken at random times (Poisson), so their spacing is uneven; a plain
    mean would give a burst of close samples the weight of a long quiet stretch.
    """
    if t.size < 2:
        return np.ones(t.shape)
    gaps = np.diff(t)
    return np.concatenate([[gaps[0]], gaps[:-1] + gaps[1:], [gaps[-1]]]) / 2


def envelope(
    t: np.ndarray, values: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(time, low, high, mean) of `values` over `bins` equal spans of time.

    A 10-minute run has more samples than the plot has pixels; drawn raw, a noisy series
    becomes a solid block. Its band of minimum to maximum keeps every peak visible (a
    reaper's "at most 8 zombies") and the time-weighted mean line shows the level. Spans
    are of time, not of sample counts, because samples are unevenly spaced; a span with
    no measurement is NaN (a gap in the line, as in the data).
    """
    edges = np.linspace(t[0], t[-1], bins + 1)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, bins - 1)
    weights = time_weights(t)
    measured = np.isfinite(values)
    low = np.full(bins, math.nan)
    high = np.full(bins, math.nan)
    total = np.zeros(bins)
    weight = np.zeros(bins)
    np.fmin.at(low, which[measured], values[measured])
    np.fmax.at(high, which[measured], values[measured])
    np.add.at(total, which[measured], (weights * values)[measured])
    np.add.at(weight, which[measured], weights[measured])
    mean = np.full(bins, math.nan)
    np.divide(total, weight, out=mean, where=weight > 0)
    return (edges[:-1] + edges[1:]) / 2, low, high, mean


def windowed_rate(t: np.ndarray, cumulative: np.ndarray, window_s: float) -> np.ndarray:
    """Per-second rate of a running total over the `window_s` seconds up to each point.

    The request timeline has ten rows a second; their differences count 0 to 20
    requests and jump by a tenth; over a second the rate reads as the load was sent.
    """
    before = np.interp(t - window_s, t, cumulative, left=math.nan)
    span = np.minimum(t - t[0], window_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        earliest = np.where(t - window_s < t[0], cumulative[0], before)
        return np.where(span > 0, (cumulative - earliest) / span, math.nan)


def rate(t: np.ndarray, cumulative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-second rate of a running total, placed between the two snapshots it spans.

    Locust's own "Requests/s" column is a trailing average that lags a step in the load by
    seconds; the difference of its running totals shows the load as it was sent.
    """
    dt = np.diff(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_s = np.where(dt > 0, np.diff(cumulative) / dt, np.nan)
    return (t[1:] + t[:-1]) / 2, per_s
