"""The final sample, taken once the server has settled after the load, whatever kind it is.

"No child alive" is the wrong test for most servers: a prefork server keeps its
workers for good, and a server that reaps on a timer (socketserver's
ForkingTCPServer polls every 0.5 s) still holds its last zombies for a moment
after the last answer. So the server has settled when its live children are back
to what they were before the load, and its zombies (anywhere in its tree) are
none, or have stopped changing for long enough that a timer reaper had its chance.
The wait is bounded; past the bound the last sample is taken as it is, and the
caller says so. Where the event record runs, the settle is judged on its exact counts
instead (:func:`settle_on_events`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from diagnostics.events import TreeCounts
from diagnostics.sampler import Sample

QUIET = 1.0
"""Seconds the zombie count must hold still: twice the 0.5 s poll of ForkingTCPServer."""
POLL = 0.05


@dataclass(frozen=True, slots=True)
class Settled:
    sample: Sample | None
    """The final sample; None when the server was gone before one could be taken."""
    settled: bool
    """False when the bound was reached first."""
    waited: float
    zombies_at_stop: int | None
    """Zombies in the whole tree at the first look after the load stopped."""
    last_fall: float | None
    """Seconds after the load stopped when the zombie count last fell; None if it never did."""

    def record(self) -> dict[str, object]:
        return {
            "settled": self.settled,
            "waited_s": round(self.waited, 3),
            "zombies_at_stop": self.zombies_at_stop,
            "last_fall_s": None if self.last_fall is None else round(self.last_fall, 3),
        }


def tree_zombies(sample: Sample) -> int:
    return sample.zombies + sample.descendant_zombies


def settle(
    take: Callable[[], Sample | None],
    baseline_alive: int,
    timeout: float,
    quiet: float = QUIET,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Settled:
    """Sample with ``take`` until the server has settled or ``timeout`` s have passed."""
    started = clock()
    last = take()
    if last is None:
        return Settled(None, True, 0.0, None, None)
    at_stop = count = tree_zombies(last)
    changed = started
    fell: float | None = None
    while True:
        now = clock()
        if last.alive <= baseline_alive and (count == 0 or now - changed >= quiet):
            return Settled(last, True, now - started, at_stop, fell)
        if now - started >= timeout:
            return Settled(last, False, now - started, at_stop, fell)
        sleep(POLL)
        sample = take()
        if sample is None:  # the server went away: what was last seen is the final word
            return Settled(last, False, clock() - started, at_stop, fell)
        now = clock()
        if tree_zombies(sample) != count:
            if tree_zombies(sample) < count:
                fell = now - started
            count, changed = tree_zombies(sample), now
        last = sample


STILL = 0.25
"""Seconds without a fork, an exit or a reap in the tree before the event record calls it
settled: children still answering the last requests exit within it."""


def settle_on_events(
    take: Callable[[], Sample | None],
    counts: Callable[[], TreeCounts | None],
    timeout: float,
    quiet: float = QUIET,
    still: float = STILL,
    clock: Callable[[], int] = time.monotonic_ns,
    sleep: Callable[[float], None] = time.sleep,
) -> Settled | None:
    """Wait, bounded by ``timeout``, until the event record shows the server settled: no
    zombie waiting to be reaped (none, or none that exited in the last ``quiet``
    seconds: a timer reaper had its chance) and no fork, exit or reap in the last ``still``.

    Exact counts need no test of the pool's size: a prefork pool that grew under the
    load and stays grown has settled (Apache's did, and the sampled test waited for it
    to shrink to what it was). Then the final sample is taken, for the cross-checks.
    None when the record stops giving counts (the sampled settle stands in).
    """
    started = clock()
    first = counts()
    if first is None:
        return None
    zombies, fell = first.zombies, None
    while True:
        now = clock()
        tree = counts()
        if tree is None:
            return None
        if tree.zombies < zombies:
            fell = (now - started) / 1e9
        zombies = tree.zombies
        waiting = tree.zombies and now - tree.last_exit_ns < quiet * 1e9
        settled = not waiting and now - tree.last_change_ns >= still * 1e9
        if settled or now - started >= timeout * 1e9:
            return Settled(take(), bool(settled), (clock() - started) / 1e9, first.zombies, fell)
        sleep(POLL)


STEADY = 0.5
"""Seconds a server's live children must hold still before the load: its workers are up."""


def steady(
    take: Callable[[], Sample | None],
    timeout: float,
    quiet: float = STEADY,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Sample | None, bool]:
    """The baseline sample, once live children stopped changing; (sample, steady?).

    A prefork server listens before its workers are all forked (gunicorn does), so
    the baseline is taken when the count has held for ``quiet`` seconds, at most
    ``timeout`` seconds after the server became ready.
    """
    started = clock()
    last = take()
    changed = started
    while last is not None:
        now = clock()
        if now - changed >= quiet:
            return last, True
        if now - started >= timeout:
            return last, False
        sleep(POLL)
        sample = take()
        if sample is not None and sample.alive != last.alive:
            changed = clock()
        last = sample if sample is not None else last
        if sample is None:
            break
    return last, False
