"""The forking parent stays small and its children start ready: what `make bench` relies on."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.server_helpers import BANNER, ROOT, read_to_eof

HEAVY_MODULES = {"argparse", "collections", "dataclasses", "enum", "http", "re", "signal", "socket"}
"""Each of these adds hundreds of kilobytes that every fork copies (see server.speed)."""


def test_the_server_imports_none_of_the_heavy_modules() -> None:
    program = "import sys, server.__main__; print(' '.join(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert "server.child" in loaded
    assert HEAVY_MODULES & set(loaded) == set()


def test_the_server_restarts_itself_with_symbols_bound_and_keeps_its_pid(start_server) -> None:
    server = start_server()
    assert server.pid == server.proc.pid
    environment = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
    assert b"LD_BIND_NOW=1" in environment
    assert server.get("/Dan").endswith(b"Hello, Dan!\n")


def _bind_now(pid: int) -> bool:
    return b"LD_BIND_NOW=1" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def test_no_rebind_serves_without_the_restart(start_server) -> None:
    server = start_server("--no-rebind")
    assert not _bind_now(server.pid)
    assert server.get("/Dan").endswith(b"Hello, Dan!\n")


def test_a_failed_restart_is_one_line_and_the_server_serves_in_place() -> None:
    """exec of an interpreter that is not there: one warning, no traceback, same process."""
    program = (
        "import runpy, sys; sys.executable = '/nonexistent/python';"
        " runpy.run_module('server', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", program, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        match = BANNER.match(proc.stdout.readline())
        assert match, "no banner"
        assert int(match["pid"]) == proc.pid and not _bind_now(proc.pid)
        request = b"GET /Dan HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", int(match["port"])), timeout=10) as conn:
            conn.sendall(request)
            assert read_to_eof(conn).endswith(b"Hello, Dan!\n")
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0
    [warning] = err.strip().splitlines()
    assert "cannot restart with LD_BIND_NOW=1 (No such file or directory)" in warning
