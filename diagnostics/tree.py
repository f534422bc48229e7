"""A process tree at one moment: who holds its zombies, and what its root has reaped.

The sampler counts zombies anywhere below a target (``descendant_zombies``); a
verdict must also say *who* holds them, because the target is often not the
culprit: a server started through ``sh -c`` leaves its zombies with the shell's
child, a supervisor with its workers. And a server whose children come and go
between two samples still leaves a trace the kernel keeps: the page faults of
every child it has waited for are added to its own ``cminflt`` counter (a forked
child takes dozens at least), so a growing counter proves the server forked and
reaped even when no sample caught a child. Children the kernel reaps itself
(SIGCHLD ignored, or a handler with SA_NOCLDWAIT, which /proc does not show)
leave no such trace: their parent never waited for them. So the snapshot also
says which processes handle SIGCHLD at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from diagnostics.errors import DiagnosticsError
from diagnostics.procstatus import cmdline, namespace_pids, sigchld_disposition
from diagnostics.proctable import open_table, read_proc_file

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "ksh", "busybox"})


@dataclass(frozen=True, slots=True)
class Holder:
    """A process in the tree with zombie children of its own."""

    pid: int
    zombies: int
    cmdline: str
    depth: int
    """0 for the root of the tree, 1 for its children, and so on."""
    nspid: int | None = None
    """Its PID in its own PID namespace, where that is not the namespace of the /proc read
    (a container's, or --pid1's): the PID its neighbours, and ps inside, know it by."""


@dataclass(frozen=True, slots=True)
class TreeSnapshot:
    holders: list[Holder]
    """Every process of the tree holding zombies, most zombies first."""
    reaped_faults: int | None
    """Page faults of the children every live process of the tree has waited for
    (cminflt, summed); None when the root could not be read. When a child is reaped
    its own count is added to its parent's, so the sum never falls."""
    sigchld: dict[int, str]
    """Processes of the tree whose SIGCHLD is not at its default: "ignored", "caught",
    "blocked". Where it is ignored (or caught), children may be reaped without a trace."""


def snapshot(root: int) -> TreeSnapshot:
    """Walk the tree under ``root`` (itself included) once; what exits meanwhile is skipped."""
    table = open_table()
    holders: list[Holder] = []
    faults: int | None = None
    sigchld: dict[int, str] = {}
    pending = [(root, 0)]
    seen = {root}
    while pending:
        pid, depth = pending.pop()
        try:
            kids = table.children(pid) - seen
            own = _reaped_faults(pid)
        except DiagnosticsError:
            continue
        faults = own if faults is None else faults + own
        disposition = _sigchld(pid)
        if disposition not in (None, "default"):
            sigchld[pid] = disposition
        seen |= kids
        zombies = 0
        for kid in kids:
            try:
                if table.stat(kid).zombie:
                    zombies += 1
                else:
                    pending.append((kid, depth + 1))
            except DiagnosticsError:
                continue
        if zombies:
            holders.append(Holder(pid, zombies, _command(pid), depth, _inner_pid(pid)))
    holders.sort(key=lambda holder: (-holder.zombies, holder.depth))
    return TreeSnapshot(holders, faults, sigchld)


def _sigchld(pid: int) -> str | None:
    try:
        return sigchld_disposition(pid)
    except DiagnosticsError:
        return None


def _inner_pid(pid: int) -> int | None:
    try:
        nspids = namespace_pids(pid)
    except DiagnosticsError:
        return None
    return nspids[-1] if len(nspids) > 1 else None


def _reaped_faults(pid: int) -> int:
    """cminflt of one process: the page faults of the children it has waited for."""
    data = read_proc_file(f"/proc/{pid}/stat", pid, one_line=True)
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[8])  # fields[0] is field 3 of proc(5); cminflt is field 11


def _command(pid: int) -> str:
    try:
        return cmdline(pid)
    except DiagnosticsError:
        return f"[pid {pid}]"


def is_shell_wrapper(command: list[str]) -> bool:
    """``sh -c '...'`` and its kin: a shell that runs the real server as its child."""
    return bool(command) and os.path.basename(command[0]) in SHELLS and "-c" in command[1:]
