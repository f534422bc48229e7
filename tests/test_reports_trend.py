"""The words of a watch's trend against the curves the issue saw them contradict."""

from __future__ import annotations

import random
from collections.abc import Sequence

from reports.trend import describe, trend


def poisson_times(seconds: float, mean_gap: float = 0.05, seed: int = 7) -> list[float]:
    """Sampling times as the recorder takes them: exponential gaps."""
    rng, t, times = random.Random(seed), 0.0, []
    while t < seconds:
        times.append(t)
        t += rng.expovariate(1 / mean_gap)
    return times


def words(times: Sequence[float], counts: Sequence[float]) -> str:
    found = trend(times, counts)
    assert found is not None
    return describe(found)


def test_a_count_that_rose_to_50_and_held_is_said_so() -> None:
    times = poisson_times(10)
    counts = [min(int(t * 25), 50) for t in times]  # 50 reached after 2 s, then held
    assert words(times, counts) == "rose to 50 zombies, then held for the last 3 s"


def test_a_count_flat_for_its_last_seconds_is_not_growing() -> None:
    times = poisson_times(16)
    counts = [min(int(t * 42), 500) for t in times]  # flat for the last 4 s
    assert words(times, counts) == "rose to 500 zombies, then held for the last 4 s"


def test_rising_falling_and_flat() -> None:
    times = poisson_times(20)
    assert words(times, [int(2 * t) for t in times]).startswith("39 zombies, rising +2.0/s")
    assert words(times, [int(60 - 2 * t) for t in times]).startswith("20 zombies, falling -2.0/s")
    assert words(times, [12 for _ in times]) == "12 zombies, flat"


def test_a_reaper_flickering_between_0_and_3_is_flat() -> None:
    rng = random.Random(3)
    times = poisson_times(20)
    counts = [rng.choice([0, 0, 0, 1, 2, 3]) for _ in times]
    counts[-1] = 1
    assert words(times, counts) == "1 zombie, flat"


def test_too_few_samples_have_no_trend() -> None:
    assert trend([0.0], [4.0]) is None
    assert trend([0.0, 1.0], [float("nan"), 4.0]) is None
