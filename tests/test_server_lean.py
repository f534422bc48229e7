"""The forking parent stays small and its children start ready: what `make bench` relies on."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.server_helpers import BANNER, REAPERLAB_SERVE, ROOT, read_to_eof

HEAVY_MODULES = {"argparse", "collections", "dataclasses", "enum", "http", "re", "signal", "socket"}
"""Each of these adds hundreds of kilobytes that every fork copies (see server.speed)."""


def server_modules(cwd: Path, *flags: str) -> set[str]:
    """The modules a Python of this venv holds once it has imported the server's main."""
    program = "import sys, server.__main__; print(' '.join(sys.modules))"
    return set(
        subprocess.run(
            [sys.executable, *flags, "-c", program],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
    )


def test_the_server_imports_none_of_the_heavy_modules() -> None:
    loaded = server_modules(ROOT)
    assert "server.child" in loaded
    assert HEAVY_MODULES & loaded == set()


def test_the_installed_server_loads_no_import_hook(tmp_path: Path) -> None:
    """Away from the checkout (as ``reaperlab serve`` runs it: -P, any directory), the
    server comes through the venv's install: a plain path entry, not an editable
    install's finder, which every Python of the venv would load (1.9 MB each)."""
    loaded = server_modules(tmp_path, "-P")
    assert "server.child" in loaded
    assert HEAVY_MODULES & loaded == set()
    assert [name for name in loaded if "editable" in name or name == "importlib.util"] == []


def anonymous_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("RssAnon:", 1)[1].split()[0])


def test_reaperlab_serve_is_the_bare_server(start_server) -> None:
    """The console command execs the server in place: same PID, a fresh interpreter
    (``python -P -m server``), so the forking parent holds nothing of the dispatcher."""
    plain = start_server()
    served = start_server(launcher=REAPERLAB_SERVE)
    assert served.pid == served.proc.pid
    cmdline = Path(f"/proc/{served.pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert cmdline == [sys.executable.encode(), b"-P", b"-m", b"server", b"--port", b"0"]
    assert served.get("/Dan").endswith(b"Hello, Dan!\n")
    assert plain.get("/Dan").endswith(b"Hello, Dan!\n")
    assert anonymous_kb(served.pid) <= anonymous_kb(plain.pid) + 64


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
