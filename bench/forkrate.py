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

And a third, for the event recorder: :class:`ForkStorm`, one fork-exit-wait loop per
core under one root, the most forks this machine makes at once.
"""

from __future__ import annotations

import os
import signal
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


_STORM_SCRIPT = """\
import os, sys, time
seconds, workers = float(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
pipes = []
for _ in range(workers):
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.close(read_end)
        start = time.monotonic()
        deadline, forks = start + seconds, 0
        while time.monotonic() < deadline:
            if os.fork() == 0:
                os._exit(0)
            os.wait()
            forks += 1
        os.write(write_end, f"{forks} {time.monotonic() - start}".encode())
        os._exit(0)
    os.close(write_end)
    pipes.append(read_end)
results = [os.read(read_end, 64).split() for read_end in pipes]
for _ in pipes:
    os.wait()
print(sum(int(n) for n, _ in results), sum(int(n) / float(s) for n, s in results), flush=True)
"""


@dataclass(frozen=True, slots=True)
class StormResult:
    forks: int
    """Children forked, exited and reaped by all the loops together."""
    rate_per_s: float
    """The loops' rates added up."""


class ForkStorm:
    """Fork-exit-wait loops, one process per core, under one root: the highest fork rate
    this machine reaches, as one process tree an event recorder can follow.

    The root is started at once and waits; :meth:`run` lets the loops go and waits for
    them, so a recorder can be started on :attr:`pid` in between.
    """

    def __init__(self, seconds: float, workers: int) -> None:
        self.seconds = seconds
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _STORM_SCRIPT, str(seconds), str(workers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the fork loops did not start")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self) -> StormResult:
        stdout, _ = self.proc.communicate("go\n", timeout=self.seconds + GRACE)
        forks, rate = stdout.split()
        return StormResult(int(forks), float(rate))

    def close(self) -> None:
        """End the loops if :meth:`run` did not (an interrupted bench)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
