"""Listening TCP sockets, read from the kernel's tables: how to know a server is up
without sending it anything.

Connecting to a server to see whether it is up is a request: one more child for a
forking server, one more zombie for a leaking one, and a crash for a server that
cannot handle an empty connection. ``/proc/net/tcp`` and ``/proc/net/tcp6`` list
every socket of this network namespace with its state; a socket in LISTEN on the
port is the server being ready to accept.
"""

from __future__ import annotations

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN = "0A"
"""TCP_LISTEN in the kernel's state numbering, as the tables print it (hex)."""


def listening_ports(tables: tuple[str, ...] = TABLES) -> set[int]:
    """Every TCP port with a socket in LISTEN, over IPv4 and IPv6 (any local address).

    A table that cannot be read (no IPv6, no /proc) contributes nothing.
    """
    ports: set[int] = set()
    for path in tables:
        try:
            with open(path, encoding="ascii") as table:
                lines = table.readlines()[1:]  # the first line is the header
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == LISTEN:
                ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports


def is_listening(port: int) -> bool:
    return port in listening_ports()
