"""The clocks an event record joins: the kernel stamps events on CLOCK_MONOTONIC, /proc
counts start times on CLOCK_BOOTTIME, and samples are on unix time (CLOCK_REALTIME).

Each offset is read between two monotonic readings, the tightest of a few tries: read
naively (one clock, then the other) a thread preempted in between would shift every
time converted with it by the length of the preemption, which on a loaded machine
is milliseconds.
"""

from __future__ import annotations

import functools
import time

TRIES = 5


def offset_ns(clock: int) -> int:
    """``clock`` minus CLOCK_MONOTONIC now, in nanoseconds."""
    best: tuple[int, int] | None = None
    for _ in range(TRIES):
        before = time.monotonic_ns()
        value = time.clock_gettime_ns(clock)
        after = time.monotonic_ns()
        if best is None or after - before < best[0]:
            best = (after - before, value - (before + after) // 2)
    assert best is not None
    return best[1]


def unix_offset_ns() -> int:
    """Unix time minus monotonic: puts a kernel timestamp on the samples' clock. Read
    anew for each use, so that a clock slewed by NTP during a long record is followed."""
    return offset_ns(time.CLOCK_REALTIME)


@functools.cache
def boot_offset_ns() -> int:
    """CLOCK_BOOTTIME minus CLOCK_MONOTONIC: the time the machine spent suspended (it
    changes only across a suspend)."""
    return offset_ns(time.CLOCK_BOOTTIME)


@functools.cache
def boot_time() -> float:
    """Unix time of boot, to the microsecond: the origin of /proc's start times.
    (/proc/stat's btime, which ps and psutil use, is cut to whole seconds.)"""
    return (unix_offset_ns() - boot_offset_ns()) / 1e9
