"""What a forked child does with its one connection: read a head, answer, exit.

Reading is bounded twice: in time (``timeout`` covers the whole head, so a
client trickling one byte a second cannot keep a child forever) and in size
(MAX_HEAD_BYTES). A slow client costs one child, never the parent.
"""

from __future__ import annotations

import os
import select
import socket
import time
from http import HTTPStatus

from server.protocol import ERROR_RESPONSES, MAX_HEAD_BYTES, answer, head_end

EXIT_ANSWERED = 0
EXIT_CLIENT_GONE = 1
"""The client sent nothing, went away, or timed out: nothing was answered."""

_RECV_SIZE = 4096


def read_head(fd: int, timeout: float) -> bytes:
    """Return the request head, or raise BadHead with what to answer (if anything).

    The head has almost always arrived by the time the child runs, so the first
    read is tried at once on a non-blocking socket; only a slow client makes the
    child wait (in poll), with ``timeout`` as a deadline for the whole head.
    """
    deadline = time.monotonic() + timeout
    os.set_blocking(fd, False)
    buffer = b""
    ready = None
    while True:
        try:
            chunk = os.read(fd, _RECV_SIZE)
        except BlockingIOError:
            if ready is None:
                ready = select.poll()
                ready.register(fd, select.POLLIN)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not ready.poll(remaining * 1000):
                raise BadHead(_incomplete(buffer, timed_out=True)) from None
            continue
        if not chunk:
            raise BadHead(_incomplete(buffer, timed_out=False))
        buffer += chunk
        end = head_end(buffer)
        if end > MAX_HEAD_BYTES or (end < 0 and len(buffer) > MAX_HEAD_BYTES):
            raise BadHead(ERROR_RESPONSES[HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE])
        if end >= 0:
            return buffer[:end]


def _incomplete(buffer: bytes, timed_out: bool) -> bytes | None:
    """What to answer a head that stopped short: nothing if nothing came at all."""
    if not buffer:
        return None
    return ERROR_RESPONSES[HTTPStatus.REQUEST_TIMEOUT if timed_out else HTTPStatus.BAD_REQUEST]


class BadHead(Exception):
    """No complete head arrived; ``reply`` is the error to send, or None to just hang up."""

    def __init__(self, reply: bytes | None) -> None:
        super().__init__("incomplete request head")
        self.reply = reply


def serve_connection(fd: int, timeout: float, work_ms: int) -> int:
    """Handle exactly one request on the client socket ``fd``; return the child's exit code.

    Plain descriptor calls rather than a socket object: the child builds and
    touches as few Python objects as it can (see server.forking).
    """
    try:
        head = read_head(fd, timeout)
    except BadHead as bad:
        if bad.reply is not None:
            _send_quietly(fd, bad.reply)
        return EXIT_CLIENT_GONE
    except OSError:
        return EXIT_CLIENT_GONE
    if work_ms:
        time.sleep(work_ms / 1000)
    return EXIT_ANSWERED if _send_quietly(fd, answer(head)) else EXIT_CLIENT_GONE


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
                serve_connection(server.fileno(), timeout=1.0, work_ms=0)


def _send_quietly(fd: int, data: bytes) -> bool:
    """Send all of ``data``; a client that hung up is not an error worth a traceback.

    Answers are a few hundred bytes and the socket is new, so its send buffer
    always has room: the (non-blocking) write completes at once.
    """
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        return False
    return True
