"""Small reductions over sampled series, where NaN means "not measured".

Samples and Locust snapshots both have holes (a blank cell, Locust's "N/A"); every figure
in the report is taken through these helpers so a hole never becomes a number.
"""

from __future__ import annotations

import math
import warnings

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


def moving_average(t: np.ndarray, values: np.ndarray, window_s: float) -> np.ndarray:
    """Centred mean over about `window_s` seconds, skipping NaN, same length as `values`.

    Per-sample counts of live children jump between 0 and a handful twenty times a
    second; averaged over a second, several scenarios can share one axis and stay legible.
    """
    if values.size < 2:
        return values
    step = float(np.nanmedian(np.diff(t)))
    width = int(round(window_s / step)) if step > 0 else 1
    if width <= 1:
        return values
    measured = np.isfinite(values)
    kernel = np.ones(min(width, values.size))
    sums = np.convolve(np.where(measured, values, 0.0), kernel, mode="same")
    counts = np.convolve(measured.astype(float), kernel, mode="same")
    averaged = np.full(values.shape, math.nan)
    np.divide(sums, counts, out=averaged, where=counts > 0)
    return averaged


def envelope(
    t: np.ndarray, values: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(time, low, high, mean) of `values` over about `bins` consecutive, equal-sized groups.

    A 10-minute run has more samples than the plot has pixels; drawn raw, a noisy series
    becomes a solid block. Its band of minimum to maximum keeps every peak visible (a
    reaper's "at most 8 zombies") and the mean line shows the level.
    """
    per = max(1, math.ceil(values.size / bins))
    groups = math.ceil(values.size / per)
    padding = groups * per - values.size

    def grouped(series: np.ndarray) -> np.ndarray:
        return np.concatenate([series, np.full(padding, math.nan)]).reshape(groups, per)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group with no measurement is NaN
        by_group = grouped(values)
        return (
            np.nanmean(grouped(t), axis=1),
            np.nanmin(by_group, axis=1),
            np.nanmax(by_group, axis=1),
            np.nanmean(by_group, axis=1),
        )


def rate(t: np.ndarray, cumulative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-second rate of a running total, placed between the two snapshots it spans.

    Locust's own "Requests/s" column is a trailing average that lags a step in the load by
    seconds; the difference of its running totals shows the load as it was sent.
    """
    dt = np.diff(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_s = np.where(dt > 0, np.diff(cumulative) / dt, np.nan)
    return (t[1:] + t[:-1]) / 2, per_s
