"""Which child processes appeared since a snapshot, and what became of them.

The instrument behind ``pytest --child-leaks`` (diagnostics.pytest_plugin), kept
apart so that pytest loads it (and psutil under it) only when the check is on.
It reads the kernel's own per-thread children lists of this process
(diagnostics.proctable): one small read per thread, and a process is looked at
further only when it is new.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from diagnostics.errors import DiagnosticsError
from diagnostics.procstatus import cmdline
from diagnostics.proctable import ProcTable, decode_exit_status, open_table


@dataclass(frozen=True)
class Leak:
    """One process left behind, as a report names it."""

    pid: int
    state: str
    """The one-letter state of ps(1): Z for a zombie, S, R, T... for a running one."""
    command: str
    """The command line; for a zombie, which has none left, ``[comm]``."""
    exit_status: str | None = None
    """How a zombie ended ("0", "3", "SIGKILL"); None for a running process."""

    def describe(self) -> str:
        if self.state != "Z":
            return f"PID {self.pid} still running (state {self.state}): {self.command}"
        ended = f"exit status {self.exit_status}" if self.exit_status else "exit status unknown"
        return f"PID {self.pid} zombie, {ended} (now reaped): {self.command}"


class LeakFinder:
    """Finds the children that are new since a snapshot; reaps the zombies among them.

    A PID names the same process for as long as it stays our child (a PID is
    only reused once its process has been reaped), so a child in the snapshot is
    not new and any other child is. A leak found running is remembered: when it
    has exited by a later look, it is reaped silently (it was reported already),
    so that warn mode does not pile up zombies.
    """

    def __init__(self) -> None:
        self._reported_running: set[int] = set()

    def children(self) -> set[int]:
        """PIDs of this process's direct children, zombies included: the snapshot."""
        return open_table().children(os.getpid())

    def since(self, before: set[int]) -> list[Leak]:
        table = open_table()
        children = table.children(os.getpid())
        for pid in self._reported_running & children:
            _reap_if_exited(table, pid)
        self._reported_running &= children
        leaks = []
        for pid in sorted(children - before):
            try:
                leak = self._examine(pid, table.stat(pid).state)
            except DiagnosticsError:
                continue  # its owner reaped it since we listed it: not left behind
            if leak is not None:
                leaks.append(leak)
        return leaks

    def _examine(self, pid: int, state: str) -> Leak | None:
        command = cmdline(pid)  # before reaping: afterwards the PID names nothing
        if state != "Z":
            self._reported_running.add(pid)
            return Leak(pid, state, command)
        try:
            reaped, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None  # its owner reaped it in between
        return Leak(pid, state, command, decode_exit_status(status) if reaped else None)


def _reap_if_exited(table: ProcTable, pid: int) -> None:
    try:
        if table.stat(pid).state == "Z":
            os.waitpid(pid, os.WNOHANG)
    except (DiagnosticsError, ChildProcessError):
        pass
