"""TCP sockets, read from the kernel's tables: how to know a server is up without sending it
anything, and which socket a descriptor is.

Connecting to a server to see whether it is up is a request: one more child for a
forking server, one more zombie for a leaking one, and a crash for a server that
cannot handle an empty connection. ``/proc/net/tcp`` and ``/proc/net/tcp6`` list
every socket of this network namespace with its state and inode; a socket in LISTEN
on the port is the server being ready to accept. The inode is what
``/proc/PID/fd/N`` names (``socket:[INODE]``), so the same tables tell which of a
process's descriptors is which socket (``/proc/PID/net/...`` for the namespace of
that process).
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN = "0A"
"""TCP_LISTEN in the kernel's state numbering, as the tables print it (hex)."""


@dataclass(frozen=True, slots=True)
class TcpSocket:
    """One row of a TCP table."""

    inode: int
    host_hex: str
    """The local address as the table writes it: 32-bit words in host byte order, in hex."""
    port: int
    """The local port."""
    state: str
    """The kernel's state number in hex (LISTEN is 0A, ESTABLISHED 01, CLOSE_WAIT 08)."""
    rx_queue: int
    """For a listening socket, the connections queued on it and not yet accepted; for
    others, the bytes received and not yet read."""

    @property
    def listening(self) -> bool:
        return self.state == LISTEN

    @property
    def address(self) -> str:
        """The local address as people write it: ``127.0.0.1:8888``, ``[::]:8888``."""
        raw = bytes.fromhex(self.host_hex)
        words = b"".join(
            raw[i : i + 4][:: -1 if sys.byteorder == "little" else 1] for i in (0, 4, 8, 12)
        )
        if len(raw) == 4:
            return f"{socket.inet_ntop(socket.AF_INET, words[:4])}:{self.port}"
        return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{self.port}"


def tables_of(pid: int) -> tuple[str, str]:
    """The TCP tables of the network namespace ``pid`` is in."""
    return (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6")


def tcp_sockets(tables: tuple[str, ...] = TABLES) -> dict[int, TcpSocket]:
    """Every TCP socket that has an inode (an owner), by inode, over IPv4 and IPv6.

    A table that cannot be read (no IPv6, no /proc) contributes nothing.
    """
    sockets: dict[int, TcpSocket] = {}
    for path in tables:
        try:
            with open(path, encoding="ascii") as table:
                lines = table.readlines()[1:]  # the first line is the header
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[9] == "0":
                continue  # TIME_WAIT and the like: no process holds them
            host, _colon, port = fields[1].rpartition(":")
            inode = int(fields[9])
            rx_queue = int(fields[4].partition(":")[2], 16)
            sockets[inode] = TcpSocket(inode, host, int(port, 16), fields[3], rx_queue)
    return sockets


def listening_ports(tables: tuple[str, ...] = TABLES) -> set[int]:
    """Every TCP port with a socket in LISTEN, over IPv4 and IPv6 (any local address)."""
    return {sock.port for sock in tcp_sockets(tables).values() if sock.listening}


def is_listening(port: int) -> bool:
    return port in listening_ports()


def listening_inodes(port: int, tables: tuple[str, ...] = TABLES) -> set[int]:
    """The inodes of the sockets listening on ``port`` (what a holder's /proc/PID/fd names)."""
    return {
        sock.inode for sock in tcp_sockets(tables).values() if sock.listening and sock.port == port
    }
