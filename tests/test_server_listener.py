"""The tutorial's second descriptor rule on the real server: the child closes the listening
socket. ``--child-keeps-listener`` breaks it, and the port outlives the parent."""

from __future__ import annotations

import errno
import os
import signal
import socket

import pytest

from diagnostics.sockets import is_listening, tcp_sockets
from tests.server_helpers import ServerProcess, reap_adopted, wait_until

QUEUED = 3


def bind_error(port: int) -> int | None:
    """The errno of binding ``port`` again as a restarted server would (SO_REUSEADDR), or None."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno
    return None


def crash_with_a_child_in_flight(server: ServerProcess) -> int:
    """Start one slow request, then SIGKILL the parent alone; the child's PID."""
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(lambda: len(server.live_children()) == 1, what="the child to start")
    [child] = server.live_children()
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait(timeout=30)
    conn.close()
    return child


@pytest.mark.parametrize("keeps", [False, True])
def test_a_child_that_keeps_the_listener_keeps_the_port(start_server, keeps: bool) -> None:
    flags = ("--child-keeps-listener",) if keeps else ()
    server = start_server("--work-ms", "60000", *flags)
    child = crash_with_a_child_in_flight(server)
    try:
        # The parent is gone; only its child can hold the port now.
        assert is_listening(server.port) is keeps
        assert bind_error(server.port) == (errno.EADDRINUSE if keeps else None)
    finally:
        os.kill(child, signal.SIGKILL)
        reap_adopted([child])  # it came to pytest, the subreaper
    assert not is_listening(server.port)
    assert bind_error(server.port) is None


def test_connections_to_a_port_only_a_child_holds_queue_and_are_never_answered(
    start_server,
) -> None:
    """The kernel still completes their handshakes; nobody accepts them, and they are
    reset when the last holder closes the socket."""
    server = start_server("--work-ms", "60000", "--child-keeps-listener")
    child = crash_with_a_child_in_flight(server)
    clients = []
    try:
        for _ in range(QUEUED):
            clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            clients[-1].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        [listener] = [s for s in tcp_sockets().values() if s.listening and s.port == server.port]
        assert listener.rx_queue == QUEUED
    finally:
        os.kill(child, signal.SIGKILL)
        reap_adopted([child])
    for client in clients:
        with client:
            try:
                assert client.recv(1024) == b""
            except ConnectionResetError:
                pass  # the usual end: the listener closed with them still queued


def test_the_child_that_keeps_the_listener_still_answers(start_server) -> None:
    server = start_server("--child-keeps-listener")
    assert server.get("/Ada").endswith(b"Hello, Ada!\n")
    assert server.stop()["forked"] == 1
