"""When the final sample is taken: after the server settled, whatever kind of server it is.

Driven by a scripted series of samples and a fake clock, so each case is exact.
"""

from __future__ import annotations

from collections.abc import Iterator

from diagnostics.sampler import Sample
from loadtest.settle import POLL, QUIET, STEADY, settle, steady


def sample(alive: int, zombies: int, deeper: int = 0) -> Sample:
    return Sample(0.0, 0.0, alive + zombies, alive, zombies, deeper, 4, 0, 0.0, 1, 0.0)


class Script:
    """Hands out samples in order (the last one forever) on a clock that moves by POLL."""

    def __init__(self, *samples: Sample) -> None:
        self._samples: Iterator[Sample] = iter(samples)
        self._last = samples[-1]
        self.now = 0.0
        self.taken = 0

    def take(self) -> Sample:
        self.taken += 1
        self._last = next(self._samples, self._last)
        return self._last

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(script: Script, baseline_alive: int = 0, timeout: float = 5.0):
    return settle(script.take, baseline_alive, timeout, clock=script.clock, sleep=script.sleep)


def test_a_prompt_reaper_settles_at_once() -> None:
    script = Script(sample(0, 0))
    result = run(script)
    assert result.settled and result.waited == 0 and script.taken == 1


def test_children_in_flight_are_waited_for() -> None:
    script = Script(sample(3, 0), sample(1, 0), sample(0, 0))
    result = run(script)
    assert result.settled and result.sample is not None and result.sample.alive == 0
    assert script.taken == 3


def test_prefork_workers_stay_and_do_not_hold_up_the_final_sample() -> None:
    script = Script(sample(4, 0), sample(2, 0))
    result = run(script, baseline_alive=2)
    assert result.settled and script.taken == 2


def test_a_timer_reaper_gets_its_chance() -> None:
    # Zombies held for 0.5 s, then reaped at once: the final sample sees none.
    held = [sample(0, 3)] * round(0.5 / POLL)
    script = Script(*held, sample(0, 0))
    result = run(script)
    assert result.settled and result.sample is not None and result.sample.zombies == 0
    assert result.zombies_at_stop == 3
    assert result.last_fall is not None and result.last_fall >= 0.45


def test_a_leak_settles_once_the_count_holds_still() -> None:
    script = Script(sample(0, 100), sample(0, 101), sample(0, 101, deeper=5), sample(0, 101, 5))
    result = run(script)
    assert result.settled and result.sample is not None
    assert (result.sample.zombies, result.sample.descendant_zombies) == (101, 5)
    assert result.last_fall is None
    assert QUIET <= result.waited < QUIET + 4 * POLL


def test_the_wait_is_bounded() -> None:
    script = Script(sample(5, 0))  # a child that never finishes
    result = run(script, timeout=2.0)
    assert not result.settled and 2.0 <= result.waited < 2.0 + 2 * POLL


def test_a_server_gone_before_the_first_look() -> None:
    result = settle(lambda: None, 0, 5.0)
    assert result.sample is None and result.zombies_at_stop is None


def test_the_baseline_waits_for_prefork_workers() -> None:
    # A server that listens first and forks its two workers afterwards (gunicorn).
    script = Script(sample(0, 0), sample(1, 0), sample(1, 0), sample(2, 0))
    baseline, is_steady = steady(script.take, 5.0, clock=script.clock, sleep=script.sleep)
    assert is_steady and baseline is not None and baseline.alive == 2
    assert script.now >= STEADY
