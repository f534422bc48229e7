"""pids cgroups a test makes and removes, and a helper process that lives in one.

The cgroups are made with the harness's own code (loadtest.cgroup), under this
process's pids cgroup, and removed with everything in them whatever the test does.
Tests that need them skip with the reason where they cannot be made (not root, no
pids controller, no delegation).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadtest import cgroup
from tests.server_helpers import reap_adopted, zombie_children_of_self


def _cgroups_usable() -> str | None:
    """None if this process may make pids cgroups, else why not."""
    try:
        probe = cgroup.create("probe", 10)
    except cgroup.CgroupUnavailable as why:
        return str(why)
    probe.remove(reap=lambda: None)
    return None


NO_CGROUP = _cgroups_usable()
needs_cgroup = pytest.mark.skipif(NO_CGROUP is not None, reason=f"no pids cgroup: {NO_CGROUP}")

MakeCgroup = Callable[..., cgroup.PidsCgroup]


@pytest.fixture
def make_cgroup() -> Iterator[MakeCgroup]:
    """``make_cgroup(name, limit, inside=None)``: a pids cgroup with that pids.max, nested
    in ``inside`` when given; all are emptied (members killed by PID) and removed at the
    end, innermost first, and any zombie this process adopted from them is reaped."""
    made: list[cgroup.PidsCgroup] = []

    def make(name: str, limit: int, inside: cgroup.PidsCgroup | None = None) -> cgroup.PidsCgroup:
        where = None if inside is None else cgroup.Hierarchy(inside.version, inside.path)
        made.append(cgroup.create(name, limit, where))
        return made[-1]

    yield make
    for group in reversed(made):
        group.remove(reap=lambda: reap_adopted(zombie_children_of_self()))


# Joins the cgroup whose cgroup.procs is argv[1], starts argv[3] idle threads, forks
# argv[2] children that exit at once and are never reaped, and prints how many forks
# were refused (EAGAIN) once every child that was made has exited. Stdin's end makes it
# reap them all and exit. Standard library only: it also runs as another user, with
# the system's python3.
IN_CGROUP = r"""
import os, sys, threading
if sys.argv[1] != "-":
    with open(sys.argv[1], "w") as procs:
        procs.write(str(os.getpid()))
for _ in range(int(sys.argv[3])):
    threading.Thread(target=threading.Event().wait, daemon=True).start()
kids, refused = [], 0
for _ in range(int(sys.argv[2])):
    try:
        pid = os.fork()
    except BlockingIOError:
        refused += 1
        continue
    if pid == 0:
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
print(refused, flush=True)
sys.stdin.buffer.read()
for pid in kids:
    os.waitpid(pid, 0)
"""


def start_in_cgroup(
    group: cgroup.PidsCgroup | None,
    zombies: int,
    threads: int = 0,
    prefix: tuple[str, ...] = (),
    python: str = sys.executable,
) -> tuple[subprocess.Popen[bytes], int]:
    """The IN_CGROUP helper (``group`` None: left where it starts), and the forks refused."""
    procs = "-" if group is None else str(group.procs_file)
    proc = subprocess.Popen(
        [*prefix, python, "-c", IN_CGROUP, procs, str(zombies), str(threads)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path("/"),
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"helper {proc.pid} exited early"
    return proc, int(line)
