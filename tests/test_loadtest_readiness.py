"""Readiness without a request: a listening socket, or a line of the server's output."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from loadtest.errors import ServerNotListening
from loadtest.processes import ManagedProcess
from loadtest.readiness import wait_until_ready

# Counts the connections it accepts and prints the count when stopped (SIGTERM), so the
# test sees that waiting for readiness connected to nothing.
LISTENER = """
import signal, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
print("port", s.getsockname()[1], flush=True)
s.listen()
s.settimeout(0.05)
accepted = 0
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
while not stop:
    try:
        s.accept()[0].close()
        accepted += 1
    except socket.timeout:
        pass
print("accepted", accepted, flush=True)
"""


def start(tmp_path: Path, code: str) -> ManagedProcess:
    return ManagedProcess("server", [sys.executable, "-c", code], tmp_path / "log", cwd=tmp_path)


def test_a_listening_socket_is_ready_and_gets_no_connection(tmp_path: Path) -> None:
    process = start(tmp_path, LISTENER)
    try:
        wait_until_ready(process, 0, 10, re.compile(r"port (\d+)"))  # learn the port first
        found = re.search(r"port (\d+)", process.log_path.read_text())
        assert found is not None
        port = int(found.group(1))
        wait_until_ready(process, port, 10)
    finally:
        process.stop(grace=5)
    assert "accepted 0" in process.log_path.read_text()


def test_a_server_that_exits_first_is_reported(tmp_path: Path) -> None:
    process = start(tmp_path, "print('bad config'); raise SystemExit(3)")
    try:
        with pytest.raises(ServerNotListening, match="exited with code 3 before listening: bad"):
            wait_until_ready(process, 1, 10)
    finally:
        process.stop(grace=5)


def test_ready_log_that_never_matches_times_out(tmp_path: Path) -> None:
    process = start(tmp_path, "import time; print('starting', flush=True); time.sleep(30)")
    try:
        with pytest.raises(ServerNotListening, match="no line matching --ready-log 'ready'"):
            wait_until_ready(process, 1, 0.3, re.compile("ready"))
    finally:
        process.stop(grace=5)
