"""The forking parent stays small and its children start ready: what `make bench` relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.server_helpers import ROOT

HEAVY_MODULES = {"argparse", "collections", "dataclasses", "enum", "http", "re", "signal", "socket"}
"""Each of these adds hundreds of kilobytes that every fork copies (see server.forking)."""


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
