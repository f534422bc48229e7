"""diagnostics.inherited: the sockets and pipes of its parent a child holds, on real children."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from diagnostics.heldfds import _address, held_from_parent, pipes_and_sockets

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def mine() -> frozenset[str]:
    return frozenset(pipes_and_sockets(os.getpid()).values())


def test_addresses_read_as_people_write_them() -> None:
    assert _address("0100007F:1F90", 4) == "127.0.0.1:8080"
    assert _address("00000000000000000000000001000000:0050", 6) == "[::1]:80"


def test_a_child_given_a_pipe_holds_its_write_end() -> None:
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(SLEEP, pass_fds=[write_end])  # returns once the child has exec'd
    try:
        target = os.readlink(f"/proc/self/fd/{write_end}")
        held = held_from_parent(proc.pid, mine())
        assert [h.describe() for h in held] == [f"{target} write end (fd {write_end})"]
    finally:
        proc.kill()
        proc.wait()
        os.close(read_end)
        os.close(write_end)


def test_a_child_keeps_a_listener_its_parent_closed() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port, fd = listener.getsockname()[1], listener.fileno()
    parent = mine()  # as the plugin notes them at the spawn
    proc = subprocess.Popen(SLEEP, pass_fds=[fd])
    listener.close()
    try:
        (held,) = held_from_parent(proc.pid, parent)
        assert held.fds == (fd,)
        assert held.what.startswith(f"TCP 127.0.0.1:{port} listening (socket:[")
    finally:
        proc.kill()
        proc.wait()


def test_standard_streams_and_the_child_s_own_are_not_counted() -> None:
    proc = subprocess.Popen(SLEEP, stdin=subprocess.PIPE)  # fd 0: given on purpose
    try:
        assert held_from_parent(proc.pid, mine()) == []
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()
