"""Helpers for the event recorder's tests: a process tree driven line by line, and the
recorder run in a process of its own (to stop it with SIGSTOP, run it as another user,
or in a user namespace).

The tree's root runs in its own session; closing its stdin makes it kill what it
forked and reap everything, and :meth:`Tree.close` kills the whole session if it
does not, so no test leaves a process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from diagnostics import contract
from diagnostics.bpf_reaps import ReapProbe, ReapProbeUnavailable
from diagnostics.proc_connector import Connector, ConnectorUnavailable
from tests.diag_helpers import DEADLINE_S, REPO

# Commands, one a line; each answers one line (PIDs, or "ok"):
#   fork N CODE       N children that exit at once with CODE (not reaped)
#   sleep             a child that waits for a signal
#   reap PID...       wait for these children
#   kill PID SIG      send a signal
#   subreaper         become a child subreaper
#   ignore            ignore SIGCHLD: the kernel reaps the children that exit from now on
#   zombie-orphan     a child that leaves a zombie grandchild and exits: "CHILD GRANDCHILD"
#   run PATH          a child that runs exec PATH (no arguments) and exits with it, reaped
#   orphan            a child that forks a sleeping grandchild and exits: "CHILD GRANDCHILD"
#   reuse             fork and reap a child, then one that asks for its PID (clone3 with
#                     set_tid): "PID", "no" (taken by others 200 times) or "cannot: why"
TREE = r"""
import ctypes, errno, os, signal, sys

def answer(*words):
    print(*words, flush=True)

def sleeper():
    pid = os.fork()
    if pid == 0:
        while True:
            signal.pause()
    return pid

class CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup")]

def reuse():
    # clone3(2) with set_tid asks for one PID (root, Linux 5.5+): the allocator's cursor,
    # which every process of the machine takes its next PID from, is left where it was.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    for _ in range(200):
        first = os.fork()
        if first == 0:
            os._exit(0)
        os.waitpid(first, 0)
        wanted = (ctypes.c_int * 1)(first)
        args = CloneArgs(exit_signal=signal.SIGCHLD, set_tid=ctypes.addressof(wanted),
                         set_tid_size=1)
        second = libc.syscall(435, ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
        if second == 0:
            os._exit(7)
        if second > 0:
            os.waitpid(second, 0)
            return str(first)
        error = ctypes.get_errno()
        if error != errno.EEXIST:  # EEXIST: another process took the PID first; again
            return "cannot: clone3 with set_tid: " + os.strerror(error)
    return "no"

mine = []
for line in sys.stdin:
    command, *args = line.split()
    if command == "fork":
        pids = []
        for _ in range(int(args[0])):
            pid = os.fork()
            if pid == 0:
                os._exit(int(args[1]))
            pids.append(pid)
        answer(*pids)
    elif command == "sleep":
        mine.append(sleeper())
        answer(mine[-1])
    elif command == "reap":
        for pid in map(int, args):
            os.waitpid(pid, 0)
        answer("ok")
    elif command == "kill":
        os.kill(int(args[0]), int(args[1]))
        answer("ok")
    elif command == "subreaper":
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
        answer("ok")
    elif command == "zombie-orphan":
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # an ignored SIGCHLD is inherited
            grandchild = os.fork()
            if grandchild == 0:
                os._exit(5)
            while open(f"/proc/{grandchild}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
                os.sched_yield()
            os.write(write_end, str(grandchild).encode())
            os._exit(0)
        os.close(write_end)
        answer(child, int(os.read(read_end, 32)))
        os.close(read_end)
    elif command == "run":
        pid = os.fork()
        if pid == 0:
            os.execv(args[0], [args[0]])
        os.waitpid(pid, 0)
        answer(pid)
    elif command == "ignore":
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        answer("ok")
    elif command == "orphan":
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            grandchild = sleeper()
            os.write(write_end, str(grandchild).encode())
            os._exit(0)
        os.close(write_end)
        answer(child, int(os.read(read_end, 32)))
        os.close(read_end)
    elif command == "late-orphan":  # the child waits on the FIFO args[0], then leaves an orphan
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            with open(args[0], "rb") as fifo:
                fifo.read(1)
            os.write(write_end, str(sleeper()).encode())
            os._exit(0)
        os.close(write_end)
        grandchild = int(os.read(read_end, 32))
        os.close(read_end)
        os.waitpid(child, 0)
        answer(child, grandchild)
    elif command == "reuse":
        answer(reuse())
for pid in mine:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


class Tree:
    """The root of a test tree; a context manager that ends the whole tree."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", TREE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.pid = self.proc.pid

    def ask(self, command: str) -> list[int]:
        """Send one command; the PIDs it answers ([] for "ok")."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        words = self.proc.stdout.readline().split()
        assert words, f"the tree gave no answer to {command!r}"
        if words[0] == "cannot:":
            pytest.skip(" ".join(words))
        return [] if words == ["ok"] else [int(word) for word in words if word != "no"]

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> Tree:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


RECORDER = r"""
import json, sys
from pathlib import Path
from diagnostics.event_recorder import EventRecorder

root, folder, options = int(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
recorder = EventRecorder(root, folder, **options)
recorder.start()
print("started", flush=True)
sys.stdin.read()
print(json.dumps(recorder.stop().to_json()), flush=True)
"""


class OutsideRecorder:
    """An EventRecorder in a process of its own, started as ``prefix`` says (a user,
    a namespace); :meth:`stop` ends it and returns its summary as JSON."""

    def __init__(
        self,
        root: int,
        folder: Path,
        options: dict[str, Any] | None = None,
        prefix: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        self.proc = subprocess.Popen(
            [*prefix, python, "-c", RECORDER, str(root), str(folder), json.dumps(options or {})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "started":
            self.proc.kill()
            _, stderr = self.proc.communicate()
            raise AssertionError(f"the recorder did not start: {line!r} {stderr}")

    def stop(self) -> dict[str, Any]:
        stdout, stderr = self.proc.communicate(timeout=DEADLINE_S)
        assert self.proc.returncode == 0, stderr
        return json.loads(stdout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def require_connector() -> None:
    """Skip unless this process may listen to the process-events connector."""
    try:
        Connector.open().close()
    except ConnectorUnavailable as reason:
        pytest.skip(str(reason))


def require_reap_probe() -> None:
    """Skip unless the connector listens and the kernel can stamp reaps here (root, BTF)."""
    require_connector()
    try:
        ReapProbe.open().close()
    except ReapProbeUnavailable as reason:
        pytest.skip(str(reason))


REAP_SOURCES = [
    pytest.param(contract.REAP_FROM_KERNEL, {}, id="kernel-stamped"),
    pytest.param(contract.REAP_FROM_PIDFD, {"reap_probe": False}, id="pidfds"),
]
"""(the reap source expected, the recorder's options): a test of both ways of timing a
reap, the kernel's stamp where it can, pidfds where it cannot."""


def require_reap_source(source: str) -> None:
    if source == contract.REAP_FROM_KERNEL:
        require_reap_probe()
    else:
        require_connector()
