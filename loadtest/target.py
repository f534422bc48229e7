"""The server under test: started by the harness, on loopback, on a port it knows.

Our server is started as ``python -m server --port 0`` and announces its port
on its first line. Any other server is given as ``--server-cmd "CMD ... {port}"``:
the harness picks a free loopback port, fills it in and waits until a socket
listens on it (see loadtest.readiness: never by connecting). Either way the
harness only ever loads a server it started.
"""

from __future__ import annotations

import compileall
import functools
import json
import re
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from diagnostics import contract
from loadtest.errors import ServerNotListening
from loadtest.processes import STOP_GRACE, ManagedProcess, OwnedProcess
from loadtest.readiness import exited_early, wait_until_ready
from loadtest.scenarios import Scenario

LOOPBACK = "127.0.0.1"
BANNER = re.compile(rb"Serving HTTP on http://[^ ]+:(\d+)/ \(pid (\d+)")
COUNTER_KEYS = ("accepted", "forked", "reaped", "fork_failures", "rejected")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Target:
    process: OwnedProcess
    """The server: the process the harness started, or the daemon its launcher left."""
    port: int
    host: str = LOOPBACK
    """Loopback unless --server-host asked for the address remote Locust workers reach."""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def final_counters(self) -> dict[str, int] | None:
        """The counters the server printed as the last line of its log, if it did."""
        try:
            lines = self.process.log_path.read_bytes().splitlines()
        except OSError:
            return None
        for line in reversed(lines[-5:]):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and all(key in data for key in COUNTER_KEYS):
                return data
        return None


def validate_server_cmd(template: str) -> list[str]:
    """Split a --server-cmd; ValueError (one line) unless it is usable."""
    try:
        argv = shlex.split(template)
    except ValueError as error:
        raise ValueError(f"--server-cmd cannot be parsed: {error}") from None
    if not argv:
        raise ValueError("--server-cmd is empty")
    if not any("{port}" in arg for arg in argv):
        raise ValueError("--server-cmd must contain {port}, where the harness puts the port")
    return argv


@functools.cache
def _compile_server() -> None:
    """Bytecode for the server, written once per harness process.

    A server that compiles its own source at start (no __pycache__, or
    PYTHONDONTWRITEBYTECODE set) keeps about 1 MB of the compiler's memory,
    and the forking parent's memory is what each fork copies.
    """
    compileall.compile_dir(ROOT / "server", quiet=1)


def start_ours(
    scenario: Scenario,
    work_ms: int,
    folder: Path,
    timeout: float,
    grace: float = STOP_GRACE,
    cgroup_procs: Path | None = None,
    host: str = LOOPBACK,
) -> Target:
    """Our server; ``grace``: how long it may take to stop if it must (--stop-grace)."""
    _compile_server()
    command = [
        sys.executable, "-m", "server",
        "--host", host, "--port", "0",
        "--work-ms", str(work_ms),
        *scenario.server_args(),
    ]  # fmt: skip
    process = ManagedProcess("server", command, folder / contract.SERVER_LOG, ROOT, cgroup_procs)
    try:
        port = _wait_for_banner(process, timeout)
    except BaseException:  # Ctrl-C while waiting too: the server is not yet ours to clean up
        process.stop(grace)
        raise
    return Target(process, port, host)


def start_external(
    template: str,
    folder: Path,
    timeout: float,
    grace: float = STOP_GRACE,
    ready_log: re.Pattern[str] | None = None,
    cgroup_procs: Path | None = None,
) -> Target:
    """A --server-cmd, followed into the daemon it forks if it daemonizes (loadtest.readiness)."""
    port = _free_loopback_port()
    argv = [arg.replace("{port}", str(port)) for arg in validate_server_cmd(template)]
    try:
        process = ManagedProcess(
            "server", argv, folder / contract.SERVER_LOG, Path.cwd(), cgroup_procs
        )
    except OSError as error:
        raise ServerNotListening(
            f"cannot start --server-cmd: {error.strerror}: {argv[0]}"
        ) from None
    try:
        server = wait_until_ready(process, port, timeout, ready_log)
    except BaseException:
        process.stop(grace)
        raise
    return Target(server, port)


def _wait_for_banner(process: ManagedProcess, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = process.log_path.read_bytes()[:4096]
        match = BANNER.search(head)
        if match:
            return int(match.group(1))
        if not process.running():
            raise ServerNotListening(exited_early(process))
        time.sleep(0.02)
    raise ServerNotListening(f"the server did not announce its port within {timeout:g} s")


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]
