"""Out of descriptors on a running server: a 503 from the spare, no spinning, and recovery.

The limit of the running parent is lowered from outside (``prlimit``), as an
operator or a container runtime would. The parent's CPU time and its voluntary
context switches come from /proc: a parent that sleeps between tries switches
voluntarily each time, one that spins never does.
"""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from diagnostics.procstatus import read_status
from diagnostics.proctable import read_stat
from tests.http_check import parse_answer
from tests.server_helpers import ServerProcess, read_to_eof, wait_until

REFUSED = 30
QUEUED = 5
PAUSES = 10
"""Sleeps of the parent to wait for while clients queue: half a second of its time."""
CPU_BOUND_S = 0.25
"""Generous: the refusals and pauses cost milliseconds; a spinning parent burns the window."""


def descriptors(pid: int) -> dict[int, str]:
    """The open descriptors of ``pid``: number -> what it points to."""
    links = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            links[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            continue
    return links


def spare(pid: int) -> list[int]:
    """The server's spare descriptor (/dev/null, above stdio), if it holds it."""
    return [fd for fd, target in descriptors(pid).items() if fd > 2 and target == os.devnull]


def cpu_seconds(pid: int) -> float:
    cpu = read_stat(pid).cpu_seconds
    assert cpu is not None
    return cpu


def voluntary_switches(pid: int) -> int:
    return int(read_status(pid)["voluntary_ctxt_switches"])


@contextmanager
def descriptor_limit(pid: int, soft: int) -> Iterator[None]:
    """The running process's soft RLIMIT_NOFILE set to ``soft``, then restored."""
    before = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, before[1]))
    except PermissionError:
        pytest.skip("may not change another process's limits (needs CAP_SYS_RESOURCE)")
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, before)


def lowest_free(held: set[int]) -> int:
    return min(set(range(len(held) + 1)) - held)


def ask(server: ServerProcess) -> int:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return parse_answer(read_to_eof(conn)).status


def test_no_descriptor_left_refuses_with_the_spare_without_spinning(start_server) -> None:
    """At a limit just at what the parent holds, the spare makes room for each 503."""
    server = start_server()
    assert ask(server) == 200
    [spare_fd] = spare(server.pid)
    with descriptor_limit(server.pid, lowest_free(set(descriptors(server.pid)))):
        cpu = cpu_seconds(server.pid)
        statuses = [ask(server) for _ in range(REFUSED)]
        used = cpu_seconds(server.pid) - cpu
    assert statuses == [503] * REFUSED
    assert used < CPU_BOUND_S, f"the parent used {used:.2f} s of CPU for {REFUSED} refusals"
    assert spare(server.pid) == [spare_fd]
    assert ask(server) == 200
    counters = server.stop()
    assert counters["rejected"] == REFUSED
    assert counters["accepted"] == REFUSED + 2


def test_below_what_the_parent_holds_it_waits_and_recovers(start_server) -> None:
    """The limit under the descriptors the parent already holds (``prlimit --nofile=6``):
    not even the spare makes room. The clients wait in the queue while the parent sleeps
    between tries; once the limit is back they are served and the spare is retaken."""
    server = start_server()
    assert ask(server) == 200
    [spare_fd] = spare(server.pid)
    held = set(descriptors(server.pid))
    conns: list[socket.socket] = []
    try:
        with descriptor_limit(server.pid, lowest_free(held - {spare_fd})):
            for _ in range(QUEUED):
                conns.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            for conn in conns:
                conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_until(lambda: not spare(server.pid), what="the spare to be spent")
            switches, cpu = voluntary_switches(server.pid), cpu_seconds(server.pid)
            wait_until(
                lambda: voluntary_switches(server.pid) >= switches + PAUSES,
                what=f"{PAUSES} pauses of the parent (a spinning parent never pauses)",
            )
            used = cpu_seconds(server.pid) - cpu
        assert used < CPU_BOUND_S, f"the parent used {used:.2f} s of CPU over {PAUSES} pauses"
        answers = [parse_answer(read_to_eof(conn)).status for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    assert answers == [200] * QUEUED
    wait_until(lambda: len(spare(server.pid)) == 1, what="the spare descriptor back")
    assert ask(server) == 200
    counters = server.stop()
    assert counters["accepted"] == counters["forked"] == QUEUED + 2
    assert counters["rejected"] == 0
