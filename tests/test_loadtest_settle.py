"""When the final sample is taken: after the server settled, whatever kind of server it is.

Driven by a scripted series of samples and a fake clock, so each case is exact.
"""

from __future__ import annotations

from collections.abc import Iterator

from diagnostics.events import TreeCounts
from diagnostics.sampler import Sample
from loadtest.settle import POLL, QUIET, STEADY, STILL, Settled, settle, settle_on_events, steady


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


class Tree:
    """The event record's counts as a scripted tree: a clock in ns that moves by POLL, and
    events at given moments: (time_s, zombies after it)."""

    def __init__(self, changes: list[tuple[float, int]], until: float = 60.0) -> None:
        self.changes = changes
        self.now_ns = 0
        self.until = until

    def clock(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)

    def counts(self) -> TreeCounts | None:
        if self.now_ns > self.until * 1e9:
            return None  # the record failed
        seen = [(at, zombies) for at, zombies in self.changes if at * 1e9 <= self.now_ns]
        last_at, zombies = seen[-1] if seen else (0.0, 0)
        before = [0, *(zombies for _, zombies in seen)]
        exits = [at for (at, now), then in zip(seen, before, strict=False) if now > then]
        return TreeCounts(
            live=0, zombies=zombies, deeper_live=0, deeper_zombies=0, peak_zombies=zombies,
            forks=0, exits=0, reaps=0, last_exit_ns=int((exits or [-10.0])[-1] * 1e9),
            last_change_ns=int(last_at * 1e9) if seen else -10**10,
        )  # fmt: skip


def run_events(tree: Tree, timeout: float = 5.0) -> Settled | None:
    def take() -> Sample:
        counts = tree.counts()
        return sample(0, counts.zombies if counts else 0)

    return settle_on_events(
        take,
        tree.counts,
        timeout,
        clock=tree.clock,
        sleep=tree.sleep,
    )


def test_on_events_a_quiet_tree_without_zombies_settles_at_once() -> None:
    result = run_events(Tree([]))
    assert result is not None and result.settled and result.waited == 0


def test_on_events_a_timer_reaper_is_waited_for_until_its_zombies_are_reaped() -> None:
    # zombies made just before the settle began, reaped together at 0.5 s (its poll)
    tree = Tree([(-0.1, 1), (0.0, 2), (0.5, 0)])
    result = run_events(tree)
    assert result is not None and result.settled
    assert 0.5 + STILL <= result.waited < 0.5 + STILL + 2 * POLL
    assert result.zombies_at_stop == 2 and result.last_fall is not None


def test_on_events_zombies_never_reaped_settle_once_none_is_young() -> None:
    tree = Tree([(-0.2, 1), (0.0, 2)])  # a server that never reaps
    result = run_events(tree)
    assert result is not None and result.settled
    assert QUIET <= result.waited < QUIET + 2 * POLL


def test_on_events_a_pool_that_stays_grown_does_not_hold_up_the_settle() -> None:
    """Apache's pool stayed above its pre-load size: the sampled settle waited for it to
    shrink and never ended; exact counts need no such test."""
    tree = Tree([])  # no fork, exit or reap after the load, however many workers live
    result = run_events(tree)
    assert result is not None and result.settled


def test_on_events_a_tree_that_keeps_changing_ends_at_the_bound() -> None:
    tree = Tree([(at / 10, (i % 2) + 1) for i, at in enumerate(range(0, 100))])
    result = run_events(tree, timeout=2.0)
    assert result is not None and not result.settled and 2.0 <= result.waited < 2.2


def test_on_events_a_record_that_stops_giving_counts_leaves_it_to_the_samples() -> None:
    assert run_events(Tree([], until=-1.0)) is None
    assert run_events(Tree([(0.0, 1)], until=0.3)) is None
