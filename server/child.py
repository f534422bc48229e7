"""What a forked child does with its one connection: read a head, answer, exit.

Reading is bounded twice: in time (``timeout`` covers the whole head, so a
client trickling one byte a second cannot keep a child forever) and in size
(MAX_HEAD_BYTES). A slow client costs one child, never the parent.
"""

from __future__ import annotations

import socket
import time
from http import HTTPStatus

from server.protocol import MAX_HEAD_BYTES, answer, error_response, head_end

EXIT_ANSWERED = 0
EXIT_CLIENT_GONE = 1
"""The client sent nothing, went away, or timed out: nothing was answered."""

_RECV_SIZE = 4096


def read_head(conn: socket.socket, timeout: float) -> bytes:
    """Return the request head, or raise BadHead with what to answer (if anything)."""
    deadline = time.monotonic() + timeout
    buffer = b""
    while True:
        end = head_end(buffer)
        if end > MAX_HEAD_BYTES or (end < 0 and len(buffer) > MAX_HEAD_BYTES):
            raise BadHead(error_response(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE))
        if end >= 0:
            return buffer[:end]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BadHead(error_response(HTTPStatus.REQUEST_TIMEOUT) if buffer else None)
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(_RECV_SIZE)
        except TimeoutError:
            continue
        if not chunk:
            raise BadHead(error_response(HTTPStatus.BAD_REQUEST) if buffer else None)
        buffer += chunk


class BadHead(Exception):
    """No complete head arrived; ``reply`` is the error to send, or None to just hang up."""

    def __init__(self, reply: bytes | None) -> None:
        super().__init__("incomplete request head")
        self.reply = reply


def serve_connection(conn: socket.socket, timeout: float, work_ms: int) -> int:
    """Handle exactly one request on ``conn``; return the child's exit code."""
    try:
        head = read_head(conn, timeout)
    except BadHead as bad:
        if bad.reply is not None:
            _send_quietly(conn, bad.reply)
        return EXIT_CLIENT_GONE
    except OSError:
        return EXIT_CLIENT_GONE
    if work_ms:
        time.sleep(work_ms / 1000)
    conn.settimeout(timeout)
    return EXIT_ANSWERED if _send_quietly(conn, answer(head)) else EXIT_CLIENT_GONE


_WARM_UP_HEADS = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /Zhuibing%20Dan HTTP/1.1\r\nHost: localhost\r\n\r\n",
)
_WARM_UP_ROUNDS = 100
"""Enough runs for CPython to finish specialising the code (a few dozen suffice)."""


def warm_up() -> None:
    """Serve a few requests over socket pairs in the parent, before it forks.

    CPython rewrites a function's bytecode in place while it warms up (3.11's
    specialising interpreter). Done in every child, that writing copies pages
    that parent and child could have shared; done here once, children inherit
    code that is already settled.
    """
    for _ in range(_WARM_UP_ROUNDS):
        for head in _WARM_UP_HEADS:
            client, server = socket.socketpair()
            with client, server:
                client.sendall(head)
                serve_connection(server, timeout=1.0, work_ms=0)


def _send_quietly(conn: socket.socket, data: bytes) -> bool:
    """Send all of ``data``; a client that hung up is not an error worth a traceback."""
    try:
        conn.sendall(data)
    except OSError:
        return False
    return True
