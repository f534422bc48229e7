"""The server under test: started by the harness, on loopback, on a port it knows.

Our server is started as ``python -m server --port 0`` and announces its port
on its first line. Any other server is given as ``--server-cmd "CMD ... {port}"``:
the harness picks a free loopback port, fills it in and waits until a socket
listens on it (see loadtest.readiness: never by connecting). Either way the
harness only ever loads a server it started.

With ``--pid1`` (or a container's scenario) either one runs as PID 1 of a new PID
namespace, or behind an init that is (loadtest/pidns.py): the process the harness
owns is then the namespace's holder, and the tree the sampler watches is the whole
namespace, from its PID 1 down.
"""

from __future__ import annotations

import compileall
import functools
import json
import re
import shlex
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diagnostics import contract
from diagnostics.errors import DiagnosticsError
from diagnostics.procstatus import namespace_pid
from diagnostics.sampler import Sample, Sampler
from loadtest.errors import ServerNotListening
from loadtest.pidns import Init, Pid1Process, Pid1Unavailable, start_pid1
from loadtest.processes import STOP_GRACE, ManagedProcess, OwnedProcess, Stopped
from loadtest.readiness import exited_early, wait_until_ready
from loadtest.scenarios import Scenario

LOOPBACK = "127.0.0.1"
BANNER = re.compile(rb"Serving HTTP on http://[^ ]+:(\d+)/ \(pid (\d+)")
COUNTER_KEYS = ("accepted", "forked", "reaped", "fork_failures", "rejected")
ROOT = Path(__file__).resolve().parent.parent
DEAF_PID1 = (
    "the server, PID 1 of its namespace without an init, has no SIGTERM handler, and PID 1"
    " is given no default action: SIGTERM would do nothing, so it was killed (SIGKILL, exit"
    " 137), as docker stop does after its grace period"
)


@dataclass
class Target:
    process: OwnedProcess
    """The process the harness owns: the server it started, the daemon its launcher left,
    or the holder of its PID namespace."""
    port: int
    host: str = LOOPBACK
    """Loopback unless --server-host asked for the address remote Locust workers reach."""
    namespace: Pid1Process | None = None
    """The server's PID namespace, when it runs as PID 1 or behind an init that is."""
    command: list[str] = field(default_factory=list)
    """The server's command line (in the namespace, the one behind the holder and init)."""

    @property
    def pid(self) -> int:
        """The root of the server's tree, which the sampler watches: the process started,
        or the namespace's PID 1 (every process of the namespace descends from it)."""
        return self.namespace.pid1 if self.namespace is not None else self.process.pid

    def pid1_record(self) -> dict[str, Any] | None:
        """scenario.json's ``pid1``: the init, and the host PIDs of the namespace's PID 1,
        of the server, and of the holder; the server's PID inside."""
        ns = self.namespace
        if ns is None:
            return None
        try:
            inside = namespace_pid(ns.command)
        except DiagnosticsError:
            inside = None
        return {
            "init": ns.init,
            "pid1": ns.pid1,
            "server": ns.command,
            "server_nspid": inside,
            "holder": ns.process.pid,
        }

    def server_sample(self) -> Sample | None:
        """The server's own figures now, where the sampler's target is not the server (an
        init is PID 1 in front of it); None otherwise, or when it cannot be read."""
        ns = self.namespace
        if ns is None or ns.command == ns.pid1:
            return None
        try:
            return Sampler(ns.command).sample()
        except DiagnosticsError:
            return None

    def stop(self, grace: float = STOP_GRACE) -> Stopped:
        """Stop the server: one SIGTERM, ``grace`` seconds, then SIGKILL, and reap it; how it
        ended (scenario.json's ``stops``). As PID 1 of a namespace without an init and with
        no SIGTERM handler of its own, SIGTERM would do nothing (PID 1 is given no default
        action): it is killed at once, as docker stop does after its grace, and the
        record says why."""
        ns = self.namespace
        if ns is None:
            return self.process.stop(grace)
        if self.process.running() and ns.init == "none" and ns.deaf_to(signal.SIGTERM):
            return ns.stop(timeout=0, why=DEAF_PID1)
        return ns.stop(timeout=grace)

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
        *scenario.server_args(work_ms),
    ]  # fmt: skip
    init = scenario.init if scenario.pid1 else None
    target = _start(command, folder, ROOT, cgroup_procs, init, timeout, host)
    try:
        target.port = _wait_for_banner(target.process, timeout)
    except BaseException:  # Ctrl-C while waiting too: the server is not yet ours to clean up
        target.stop(grace)
        raise
    return target


def start_external(
    template: str,
    folder: Path,
    timeout: float,
    grace: float = STOP_GRACE,
    ready_log: re.Pattern[str] | None = None,
    cgroup_procs: Path | None = None,
    init: Init | None = None,
) -> Target:
    """A --server-cmd server, ready; as PID 1 of a new PID namespace behind ``init``
    ("none": as PID 1 itself) unless ``init`` is None; followed into the daemon it forks
    if it daemonizes (loadtest.readiness)."""
    port = _free_loopback_port()
    argv = [arg.replace("{port}", str(port)) for arg in validate_server_cmd(template)]
    try:
        target = _start(argv, folder, Path.cwd(), cgroup_procs, init, timeout)
    except OSError as error:
        raise ServerNotListening(
            f"cannot start --server-cmd: {error.strerror}: {argv[0]}"
        ) from None
    target.port = port
    try:
        assert isinstance(target.process, ManagedProcess)
        target.process = wait_until_ready(target.process, port, timeout, ready_log)
    except BaseException:
        target.stop(grace)
        raise
    return target


def _start(
    command: list[str],
    folder: Path,
    cwd: Path,
    cgroup_procs: Path | None,
    init: Init | None,
    timeout: float,
    host: str = LOOPBACK,
) -> Target:
    """The server's process started (its port not known yet): as it is, or as PID 1 of a
    new PID namespace behind ``init`` (None: not in a namespace of its own)."""
    log = folder / contract.SERVER_LOG
    if init is None:
        process = ManagedProcess("server", command, log, cwd, cgroup_procs)
        return Target(process, 0, host, command=command)
    try:
        namespace = start_pid1(
            "server", command, log, cwd, init=init, cgroup_procs=cgroup_procs, timeout=timeout
        )
    except Pid1Unavailable as why:
        raise ServerNotListening(f"the server could not start as PID 1: {why}") from None
    return Target(namespace.process, 0, host, namespace, command)


def _wait_for_banner(process: OwnedProcess, timeout: float) -> int:
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
