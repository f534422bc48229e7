"""A server as PID 1 of a new PID namespace, as in a container, optionally behind an init.

A container's first process is PID 1 of its PID namespace: every orphan of the
namespace is handed to it, and it must reap them, or they stay zombies for as long as
it lives. ``docker run --init`` puts an init in front (tini, as docker-init) that
reaps them and forwards signals to the application. :func:`start_pid1` starts a
command that way: as PID 1 itself (``init="none"``), or under dumb-init or tini as
PID 1, the way ``docker run --init`` does.

The process the caller owns is the holder (loadtest/pidns_holder.py), outside the
namespace, started like every process of the harness (loadtest.processes: its own
session, SIGTERM if the harness dies, the pids cgroup joined before its first
instruction, so the whole namespace is counted in the cgroup). Stopping the holder
stops PID 1, and the kernel ends everything left in the namespace with it.

Every PID here is as the host sees it (diagnostics.procstatus.namespace_pid gives the
PID inside).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

from diagnostics.errors import DiagnosticsError
from diagnostics.procstatus import read_status
from diagnostics.proctable import read_proc_file, read_stat, task_children
from loadtest import pidns_holder
from loadtest.processes import STOP_GRACE, ManagedProcess, Stopped, exit_text, send
from loadtest.trace import TRACE

Init = Literal["none", "dumb-init", "tini"]
INITS: tuple[Init, ...] = get_args(Init)
HOLDER = Path(pidns_holder.__file__)
POLL = 0.01
KILLED_WAIT = 10.0
"""Seconds the holder is given to report PID 1 killed (128 + 9) before it is killed too."""

_WHERE = {
    "dumb-init": "dumb-init is not in this environment (make install puts it in .venv/bin)",
    "tini": "tini is not installed (Debian: apt-get install tini)",
}


class Pid1Unavailable(Exception):
    """A command cannot be started as PID 1 here; the message says why, in one line."""


class Pid1Process:
    """A command running as PID 1 of its own PID namespace, or under an init that is.

    PIDs are the host's. ``pid1`` is held by a pidfd as well, so that the SIGKILL of
    :meth:`stop` can only ever reach that process, whatever happens to its PID.
    """

    def __init__(self, process: ManagedProcess, init: Init, pid1: int, command: int) -> None:
        self.process = process
        """The holder: its exit status is PID 1's (128 + N for signal N)."""
        self.init = init
        self.pid1 = pid1
        """The namespace's PID 1: the init, or the command itself."""
        self.command = command
        """The command: ``pid1`` without an init, the init's child with one."""
        self._pidfd: int | None = os.pidfd_open(pid1)
        self.stopped: Stopped | None = None

    def stop(
        self, signum: int = signal.SIGTERM, timeout: float = STOP_GRACE, why: str | None = None
    ) -> Stopped:
        """Ask PID 1 to stop (the holder forwards ``signum``); after ``timeout``, SIGKILL
        it, which the kernel carries to every process of the namespace. PID 1 is
        killed, not the holder, so the holder still reaps it and reports how it
        ended; nothing of the namespace is left to anyone else to reap. Returns how PID 1
        ended (the holder's exit status is PID 1's); ``why``: why a ``timeout`` of 0 was
        given (a PID 1 that cannot act on ``signum``), for the record."""
        if self.stopped is not None:
            return self.stopped
        signals: list[str] = []
        started = time.monotonic()
        if self._pidfd is not None:
            if self.process.running():
                if send(self.process.pid, signum, "PID 1's holder: stop (forwarded to PID 1)"):
                    signals.append(signal.Signals(signum).name)
                if self.process.wait(timeout) is None:
                    signals.append("SIGKILL")
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                    TRACE(
                        f"signal SIGKILL -> {self.pid1} (PID 1, by pidfd): not stopped"
                        f" {timeout:g} s after {signals[0]}"
                    )
                    self.process.wait(KILLED_WAIT)  # the holder reaps it, and says so
            os.close(self._pidfd)
            self._pidfd = None
        waited = time.monotonic() - started if signals else 0.0
        holder = self.process.stop()
        code = self.process.returncode
        ended = holder.ended if code is None else exit_text(128 - code if code > 128 else code)
        self.stopped = Stopped(self.pid1, tuple(signals), waited, "SIGKILL" in signals, ended, why)
        return self.stopped

    @property
    def exit_code(self) -> int | None:
        """The holder's exit status: PID 1's (128 + N when signal N ended it)."""
        return self.process.returncode

    def deaf_to(self, signum: int = signal.SIGTERM) -> bool:
        """Whether PID 1 has no handler for ``signum``: the kernel then discards it (PID 1
        is given no default action), and only SIGKILL ends PID 1. False where /proc does
        not say, or PID 1 is gone."""
        try:
            caught = int(read_status(self.pid1)["SigCgt"], 16)
        except (DiagnosticsError, KeyError, ValueError):
            return False
        return not caught & (1 << (signum - 1))

    def __enter__(self) -> Pid1Process:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def init_path(init: Init) -> str | None:
    """Where the init's program is (None for "none", or when it is missing).

    dumb-init is locked with the project's dependencies, so it is looked for beside
    this Python first; tini comes from the system (Debian's package).
    """
    if init == "none":
        return None
    beside = Path(sys.executable).with_name(init)
    return str(beside) if beside.is_file() else shutil.which(init)


def unavailable(init: Init = "none") -> str | None:
    """Why a command cannot run as PID 1 (behind ``init``) here, in one line; None if it can.

    The kernel is asked, by the holder itself: root is needed (CAP_SYS_ADMIN), and a
    container may refuse namespaces even to root.
    """
    if not sys.platform.startswith("linux"):
        return "PID namespaces are Linux's"
    if init != "none" and init_path(init) is None:
        return _WHERE[init]
    check = subprocess.run(
        [sys.executable, "-I", str(HOLDER), pidns_holder.CHECK],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check.returncode == 0:
        return None
    return check.stderr.strip().removeprefix(pidns_holder.SAYS) or f"exit {check.returncode}"


def pid1_command(command: Sequence[str], init: Init = "none") -> list[str]:
    """The command line that runs ``command`` as PID 1 of a new PID namespace, behind ``init``.

    Pid1Unavailable when the init's program is missing. An init is given ``--`` so that
    it takes none of the command's flags for its own (``docker run --init`` does the same).
    """
    front: list[str] = []
    if init != "none":
        path = init_path(init)
        if path is None:
            raise Pid1Unavailable(_WHERE[init])
        front = [path, "--"]
    return [sys.executable, "-I", str(HOLDER), *front, *command]


def start_pid1(
    name: str,
    command: Sequence[str],
    log_path: Path,
    cwd: Path,
    *,
    init: Init = "none",
    cgroup_procs: Path | None = None,
    timeout: float = 10.0,
) -> Pid1Process:
    """Start ``command`` as PID 1 of a new PID namespace (behind ``init``); return its PIDs.

    Returns once the command itself runs (it has replaced the holder's, or the init's,
    copy of itself), so its host PID is known. Pid1Unavailable (one line) if the
    holder or the command exits first, or it takes longer than ``timeout``; nothing
    it started is then left running.
    """
    process = ManagedProcess(name, pid1_command(command, init), log_path, cwd, cgroup_procs)
    try:
        pid1 = _exec_child(process, process.pid, timeout)
        server = pid1 if init == "none" else _exec_child(process, pid1, timeout)
        return Pid1Process(process, init, pid1, server)
    except ProcessLookupError:  # PID 1 ended between the look and the pidfd
        process.stop()
        raise Pid1Unavailable(_exited(process)) from None
    except BaseException:
        process.stop()
        raise


def _exec_child(process: ManagedProcess, parent: int, timeout: float) -> int:
    """The host PID of ``parent``'s one child, once it runs a program other than its parent's.

    A child is a copy of its parent until it execs; till then its command line is the
    parent's. Only that change says the command (or the init) is running.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not process.running():
            raise Pid1Unavailable(_exited(process))
        child = _running_other_program(parent)
        if child is not None:
            return child
        if time.monotonic() > deadline:
            raise Pid1Unavailable(f"the namespace's processes did not start within {timeout:g} s")
        time.sleep(POLL)


def _running_other_program(parent: int) -> int | None:
    try:
        theirs = _arguments(parent)
        for child in sorted(task_children(parent)):
            ours = _arguments(child)
            if ours and ours != theirs and not read_stat(child).zombie:
                return child
    except DiagnosticsError:
        return None  # one of them exited meanwhile: the caller looks again, or sees why
    return None


def _arguments(pid: int) -> bytes:
    """/proc/PID/cmdline as it is: empty once the process has let go of its memory, as
    one that failed to exec does on its way out (ps then shows [comm], which differs
    from its parent's command line, yet nothing runs)."""
    return read_proc_file(f"/proc/{pid}/cmdline", pid)


def _exited(process: ManagedProcess) -> str:
    try:
        lines = process.log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    said = lines[-1].removeprefix(pidns_holder.SAYS) if lines else "no output"
    return f"PID 1 exited with code {process.popen.returncode} before it started: {said}"
