"""The final sample, taken once the server has settled after the load, whatever kind it is.

"No child alive" is the wrong test for most servers: a prefork server keeps its
workers for good, and a server that reaps on a timer (socketserver's
ForkingTCPServer polls every 0.5 s) still holds its last zombies for a moment
after the last answer. So the server has settled when its live children are back
to what they were before the load, and its zombies (anywhere in its tree) are
none, or have stopped changing for long enough that a timer reaper had its chance.
The wait is bounded; past the bound the last sample is taken as it is, and the
caller says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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
