"""``--orphans``: each request leaves a grandchild that outlives its parent, and its
zombie goes to whoever adopts it (here pytest, a child subreaper), never to the server.
"""

from __future__ import annotations

import os
from pathlib import Path

from diagnostics.proctable import read_stat, task_children
from diagnostics.subreaper import become_subreaper
from server.child import EXIT_NO_ORPHAN, EXIT_ORPHAN
from tests.server_helpers import reap_adopted, wait_until
from tests.test_server_http import pids_cgroup  # noqa: F401  (a fixture)

REQUESTS = 3


def adopted_zombies(before: set[int], server_pid: int) -> dict[int, int]:
    """{PID: raw exit status} of the zombies that came to this process since ``before``."""
    zombies = {}
    for pid in task_children(os.getpid()) - before - {server_pid}:
        st = read_stat(pid)
        if st.zombie and st.exit_status is not None:
            zombies[pid] = st.exit_status
    return zombies


def test_each_request_leaves_one_orphan_that_its_adopter_reaps(start_server) -> None:
    assert become_subreaper(), "the test needs pytest to adopt the orphans (Linux)"
    before = task_children(os.getpid())
    server = start_server("--orphans")
    for _ in range(REQUESTS):
        assert server.get("/Dan").endswith(b"Hello, Dan!\n")
    wait_until(
        lambda: len(adopted_zombies(before, server.proc.pid)) == REQUESTS,
        what=f"{REQUESTS} orphans adopted by pytest to exit",
    )
    orphans = adopted_zombies(before, server.proc.pid)
    for pid, status in orphans.items():
        assert os.waitpid(pid, 0) == (pid, status)
        assert os.waitstatus_to_exitcode(status) == EXIT_ORPHAN
    counters = server.stop()
    # The server forked and reaped its own children only: the orphans were never its.
    assert counters["forked"] == counters["reaped"] + counters["reaped_at_shutdown"] == REQUESTS


def test_without_the_flag_no_orphan_is_left(start_server) -> None:
    assert become_subreaper()
    before = task_children(os.getpid())
    server = start_server()
    assert server.get("/Dan").endswith(b"Hello, Dan!\n")
    server.stop()
    assert task_children(os.getpid()) - before == set()


def test_a_grandchild_the_pids_limit_refuses_is_told_by_the_exit_status(
    start_server,
    pids_cgroup: Path,  # noqa: F811
) -> None:
    """Room for the server and one child, none for the grandchild: the request is still
    answered, and the child's exit status (read from its zombie) says the orphan is missing."""
    (pids_cgroup / "pids.max").write_text("2")
    enter = f'echo $$ > {pids_cgroup / "cgroup.procs"} && exec "$@"'
    server = start_server("--orphans", "--no-reaper", prefix=["sh", "-c", enter, "sh"])
    assert server.get("/Dan").endswith(b"Hello, Dan!\n")
    wait_until(lambda: len(server.zombie_pids()) == 1, what="the child to exit")
    (child,) = server.zombie_pids()
    status = read_stat(child).exit_status
    assert status is not None and os.waitstatus_to_exitcode(status) == EXIT_NO_ORPHAN
    server.stop()
    reap_adopted([child])  # it came to pytest, the subreaper, when the server exited
