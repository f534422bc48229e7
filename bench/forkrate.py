"""The ceiling of the design: how fast a small Python process can fork, exit and wait.

A fork-per-connection server cannot serve more connections per second than its
parent can fork children that exit and are reaped. Measured two ways, in a fresh
interpreter (not this process, whose imports would make it bigger and slower to
fork) with the same Python the servers run:

- one child at a time (fork, the child exits, wait): the raw rate, with no
  overlap between the parent and its children;
- with as many children in flight as the load has connections: the ceiling a
  server under that load can approach, since its children run on the other CPUs
  while the parent forks the next one. A server can beat the first figure, never
  the second.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

_SCRIPT = """\
import os, sys, time
seconds, in_flight = float(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + seconds
start, reaped, running = time.monotonic(), 0, 0
while time.monotonic() < deadline:
    if running == in_flight:
        os.waitpid(-1, 0)
        running, reaped = running - 1, reaped + 1
    if os.fork() == 0:
        os._exit(0)
    running += 1
while running:
    os.waitpid(-1, 0)
    running, reaped = running - 1, reaped + 1
elapsed = time.monotonic() - start
rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
print(reaped / elapsed, rss)
"""
GRACE = 15.0


@dataclass(frozen=True, slots=True)
class ForkRate:
    rate_per_s: float
    rss_bytes: int
    """The forking process's resident memory: fork cost grows with it."""
    in_flight: int


def fork_rate(seconds: float, in_flight: int) -> ForkRate:
    """Children forked, exited and reaped per second, ``in_flight`` of them at most at once."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(seconds), str(in_flight)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=seconds + GRACE,
        check=True,
        start_new_session=True,
    )
    rate, rss = done.stdout.split()
    return ForkRate(float(rate), int(rss), in_flight)
