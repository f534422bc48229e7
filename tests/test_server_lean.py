"""The forking parent stays small and its children start ready: what `make bench` relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.server_helpers import REAPERLAB_SERVE, ROOT

HEAVY_MODULES = {"argparse", "collections", "dataclasses", "enum", "http", "re", "signal", "socket"}
"""Each of these adds hundreds of kilobytes that every fork copies (see server.forking)."""


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
