"""A process that leaks zombies when told to, and reaps them when told to: the counts a
test expects are then known without looking."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# For each line on stdin: "N" makes N children that exit at once, "reap" waits for every
# child made so far; each is answered "ok" once done (the new children have all exited).
# Stdin's end reaps them all.
ON_DEMAND = r"""
import os, sys
kids = []
for line in sys.stdin:
    if line.strip() == "reap":
        for pid in kids:
            os.waitpid(pid, 0)
        kids = []
        print("ok", flush=True)
        continue
    made = []
    for _ in range(int(line)):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        made.append(pid)
    for pid in made:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    kids += made
    print("ok", flush=True)
for pid in kids:
    os.waitpid(pid, 0)
"""


class Leaker:
    """The ON_DEMAND process, inside the pids cgroup ``procs`` names when given."""

    def __init__(self, procs: Path | None = None) -> None:
        prefix = [] if procs is None else ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"]
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", ON_DEMAND],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    def leak(self, count: int) -> None:
        """Make ``count`` more zombies; return once they are."""
        self._say(str(count))

    def reap(self) -> None:
        """Reap every zombie made so far; return once they are."""
        self._say("reap")

    def _say(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{line}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "ok\n"

    def end(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
