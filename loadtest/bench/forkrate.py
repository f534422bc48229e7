"""The ceiling of the design: how fast a small Python process can fork, exit and wait.

A fork-per-connection server cannot serve more connections per second than its
parent can fork children that exit and are reaped, one after another. Measured in
a fresh interpreter (not this process, whose imports would make it bigger and
slower to fork), with the same Python the servers run.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

_SCRIPT = """\
import os, sys, time
deadline = time.monotonic() + float(sys.argv[1])
start, count = time.monotonic(), 0
while time.monotonic() < deadline:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    count += 1
elapsed = time.monotonic() - start
rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
print(count / elapsed, rss)
"""
GRACE = 15.0


@dataclass(frozen=True, slots=True)
class ForkRate:
    rate_per_s: float
    rss_bytes: int
    """The forking process's resident memory: fork cost grows with it."""


def fork_rate(seconds: float) -> ForkRate:
    """Serial fork + _exit + waitpid per second of a fresh ``python -c`` process."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(seconds)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=seconds + GRACE,
        check=True,
        start_new_session=True,
    )
    rate, rss = done.stdout.split()
    return ForkRate(float(rate), int(rss))
