"""The process-events connector's reader: a fork and an exit told as events, by each way
of receiving them (recvmmsg, and one recv() a datagram where the C library lacks it)."""

from __future__ import annotations

import os
import select
import time

import pytest

from diagnostics import proc_connector
from diagnostics.proc_connector import EXIT, FORK, Connector, Event
from tests.event_helpers import require_connector

DEADLINE_S = 10.0


def _events_of(conn: Connector, pid: int) -> list[Event]:
    """What the connector tells of ``pid`` until its exit is read (DEADLINE_S at most)."""
    told: list[Event] = []
    deadline = time.monotonic() + DEADLINE_S
    while not any(event[0] == EXIT and event[3] == pid for event in told):
        left = deadline - time.monotonic()
        assert left > 0, f"no exit event for {pid} within {DEADLINE_S} s: {told}"
        select.select([conn.fileno()], [], [], left)
        told += [event for event in conn.read_batch() if pid in (event[2], event[3])]
    return told


@pytest.mark.parametrize("one_at_a_time", [False, True], ids=["recvmmsg", "recv"])
def test_a_fork_and_an_exit_are_told_with_parent_and_status(one_at_a_time: bool) -> None:
    require_connector()
    conn = Connector.open()
    try:
        if one_at_a_time:
            conn._receive, conn._slots = (
                proc_connector._OneAtATime(conn._sock, conn._buffer).read,
                1,
            )
        before = time.monotonic_ns()
        pid = os.fork()
        if pid == 0:
            os._exit(3)
        os.waitpid(pid, 0)
        told = _events_of(conn, pid)
    finally:
        conn.close()
    forks = [event for event in told if event[0] == FORK]
    exits = [event for event in told if event[0] == EXIT]
    assert [(child, tgid, parent) for _, _, child, tgid, parent, _ in forks] == [
        (pid, pid, os.getpid())
    ]
    assert [(task, status) for _, _, task, _, _, status in exits] == [(pid, 3 << 8)]
    assert before <= forks[0][1] <= exits[0][1] <= time.monotonic_ns()
    assert conn.lost == 0
