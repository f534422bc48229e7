"""Descriptors a child holds that are its parent's: the sockets and pipes it kept.

A forked child gets a copy of every descriptor of its parent, and an exec keeps
every one not marked close-on-exec. A child left running that still holds its
parent's listening socket keeps the port bound after the parent closed it; one
that holds the write end of a pipe keeps the reader from ever seeing the end of
it (the "child keeps its parent's socket" class of bugs). Only the kernel's
names of the open files are compared (``socket:[inode]``, ``pipe:[inode]`` from
/proc/PID/fd): the same name is the same socket or pipe, whichever process holds
it. Standard input, output and error (0-2) are what a child is given on purpose,
so they are left out.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from diagnostics.errors import DiagnosticsError
from diagnostics.proctable import list_dir, read_proc_file
from diagnostics.sockets import LISTEN

KINDS = ("socket:[", "pipe:[")
STANDARD_FDS = 3
"""Descriptors 0, 1 and 2: given to a child on purpose."""
TCP_STATES = {"01": "connected", LISTEN: "listening"}
ACCESS = {0: "read end", 1: "write end", 2: "read-write"}


@dataclass(frozen=True)
class Held:
    """A socket or pipe of the parent that the child holds, under one or more descriptors."""

    fds: tuple[int, ...]
    what: str
    """The target in words: "TCP 127.0.0.1:8080 listening (socket:[N])", "pipe:[N] write end"."""

    def describe(self) -> str:
        label = "fd" if len(self.fds) == 1 else "fds"
        return f"{self.what} ({label} {', '.join(map(str, self.fds))})"


def pipes_and_sockets(pid: int) -> dict[int, str]:
    """The descriptors of ``pid`` that are sockets or pipes: fd -> ``socket:[N]``/``pipe:[N]``."""
    held = {}
    for name in list_dir(f"/proc/{pid}/fd", pid):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue  # closed while we looked
        if target.startswith(KINDS):
            held[int(name)] = target
    return held


def held_from_parent(pid: int, parent: frozenset[str]) -> list[Held]:
    """The sockets and pipes ``pid`` holds beyond 0-2 that are also ``parent``'s.

    ``parent`` is the parent's sockets and pipes, as ``pipes_and_sockets`` names
    them, at the spawn and now together: a listener the parent has closed since
    the fork is still the parent's socket that the child keeps.
    """
    try:
        mine = pipes_and_sockets(pid)
    except DiagnosticsError:
        return []  # gone, or not ours to read
    by_what: dict[str, list[int]] = {}
    sockets: dict[str, str] | None = None
    for fd, target in sorted(mine.items()):
        if fd < STANDARD_FDS or target not in parent:
            continue
        if sockets is None and target.startswith("socket:"):
            sockets = _tcp_sockets()
        by_what.setdefault(_describe(pid, fd, target, sockets or {}), []).append(fd)
    return [Held(tuple(fds), what) for what, fds in by_what.items()]


def _describe(pid: int, fd: int, target: str, sockets: dict[str, str]) -> str:
    if target.startswith("socket:"):
        found = sockets.get(target[len("socket:[") : -1])
        return f"{found} ({target})" if found else target
    return f"{target} {_access(pid, fd)}"


def _access(pid: int, fd: int) -> str:
    """Which end of a pipe the descriptor is, from its open flags (octal in fdinfo)."""
    try:
        info = read_proc_file(f"/proc/{pid}/fdinfo/{fd}", pid).decode()
    except DiagnosticsError:
        return ""
    for line in info.splitlines():
        if line.startswith("flags:"):
            return ACCESS.get(int(line.split()[1], 8) & os.O_ACCMODE, "")
    return ""


def _tcp_sockets() -> dict[str, str]:
    """inode -> "TCP 127.0.0.1:8080 listening" for the TCP sockets of this network namespace."""
    found = {}
    for path, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            with open(path, encoding="ascii") as table:
                lines = table.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9:
                state = TCP_STATES.get(fields[3], "")
                found[fields[9]] = f"TCP {_address(fields[1], family)} {state}".rstrip()
    return found


def _address(hex_address: str, family: int) -> str:
    """``0100007F:1F90`` (the kernel's byte order) -> ``127.0.0.1:8080``."""
    host, _, port = hex_address.partition(":")
    raw = bytes.fromhex(host)
    if family == 4:
        return f"{'.'.join(str(b) for b in reversed(raw))}:{int(port, 16)}"
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]  # four host-order 32-bit words
    return f"[{ipaddress.IPv6Address(b''.join(words))}]:{int(port, 16)}"
