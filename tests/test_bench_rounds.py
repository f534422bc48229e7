"""The bench's verdict on a ratio: the median of paired rounds, and whether its interval
lets the rounds tell the target apart from the noise."""

from __future__ import annotations

import random

from bench.rounds import median_interval, target


def test_the_interval_is_the_order_statistics_that_hold_the_median_95_times_in_100() -> None:
    assert median_interval([float(n) for n in range(20, 0, -1)]) == (6.0, 15.0)
    assert median_interval([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]) == (1.0, 6.0)
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # 1/32 > 2.5%: no interval


def test_it_holds_the_true_median_about_as_often_as_it_says() -> None:
    draw = random.Random(19)
    trials = 2000
    held = 0
    for _ in range(trials):
        interval = median_interval([draw.gauss(1.0, 0.06) for _ in range(16)])
        assert interval is not None
        held += interval[0] <= 1.0 <= interval[1]
    assert 0.95 * trials <= held <= 0.995 * trials  # 16 values: the interval holds 97.9%


def test_a_verdict_the_noise_could_have_made_is_not_shown() -> None:
    noisy = target([0.90, 1.04, 0.99, 0.95, 1.01, 0.97, 0.98, 1.02], 0.97)
    assert noisy["met"] is True and noisy["shown"] is False
    clear = target([0.99, 1.00, 0.98, 1.01, 0.995, 1.0, 0.985, 1.02], 0.97)
    assert clear["met"] is True and clear["shown"] is True
    missed = target([0.90, 0.91, 0.92, 0.93, 0.94, 0.92, 0.93, 0.91], 0.97)
    assert missed["met"] is False and missed["shown"] is True
    few = target([1.0, 1.0], 0.97)
    assert few["met"] is True and few["shown"] is None and few["interval"] is None
    assert target([], 0.97)["met"] is None
