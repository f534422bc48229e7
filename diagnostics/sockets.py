"""Listening TCP sockets, read from the kernel's tables: how to know a server is up
without sending it anything.

Connecting to a server to see whether it is up is a request: one more child for a
forking server, one more zombie for a leaking one, and a crash for a server that
cannot handle an empty connection. ``/proc/net/tcp`` and ``/proc/net/tcp6`` list
every socket of this network namespace with its state; a socket in LISTEN on the
port is the server being ready to accept.
"""

from __future__ import annotations

import os

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN = "0A"
"""TCP_LISTEN in the kernel's state numbering, as the tables print it (hex)."""


def _listening(tables: tuple[str, ...]) -> list[tuple[int, int]]:
    """(port, socket inode) of every TCP socket in LISTEN, over IPv4 and IPv6.

    A table that cannot be read (no IPv6, no /proc) contributes nothing.
    """
    found = []
    for path in tables:
        try:
            with open(path, encoding="ascii") as table:
                lines = table.readlines()[1:]  # the first line is the header
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN:
                found.append((int(fields[1].rpartition(":")[2], 16), int(fields[9])))
    return found


def listening_ports(tables: tuple[str, ...] = TABLES) -> set[int]:
    """Every TCP port with a socket in LISTEN (any local address)."""
    return {port for port, _inode in _listening(tables)}


def is_listening(port: int) -> bool:
    return port in listening_ports()


def listening_inodes(port: int, tables: tuple[str, ...] = TABLES) -> set[int]:
    """The inodes of the sockets listening on ``port``: what :func:`holds_socket` looks for."""
    return {inode for found, inode in _listening(tables) if found == port}


def holds_socket(pid: int, inodes: set[int]) -> bool:
    """Whether ``pid`` has one of these sockets open (its /proc/PID/fd links name them)."""
    names = {f"socket:[{inode}]" for inode in inodes}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in names:
                return True
        except OSError:
            continue
    return False
