"""What a forked child does with its one connection: read a head, answer, exit.

Reading is bounded twice: in time (``timeout`` covers the whole head, so a
client trickling one byte a second cannot keep a child forever) and in size
(MAX_HEAD_BYTES). A slow client costs one child, never the parent.

Everything here runs in a child that shares its pages with the parent until
it writes to them, and CPython writes to every object it uses (reference
counts). So the child's path is short and touches few objects: functions are
called through names bound here once (``read``, not ``os.read``, which would
touch the os module too), the child gets plain values rather than the server
object, and server.speed.warm_up runs this very code in the parent before the
first fork.
"""

from __future__ import annotations

from os import _exit, close, fork, read, set_blocking, write
from select import POLLIN, poll
from time import monotonic, sleep

from server.protocol import (
    BAD_REQUEST,
    MAX_HEAD_BYTES,
    REQUEST_TIMEOUT,
    answer,
    error_answer,
    head_end,
    hopeless_start,
    too_large,
)
from server.speed import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

EXIT_ANSWERED = 0
EXIT_CLIENT_GONE = 1
"""The client sent nothing, went away, or timed out: nothing was answered."""
EXIT_CRASHED = 70
"""The child raised: a bug, reported by its exit status (EX_SOFTWARE) instead of a traceback."""
EXIT_NO_ORPHAN = 75
"""--orphans: the request was served but the grandchild could not be forked (EX_TEMPFAIL)."""
EXIT_ORPHAN = 0
"""--orphans: the grandchild's exit status, the one its adopter finds in its zombie."""

ORPHAN_SECONDS = 0.05
"""--orphans: how long a grandchild outlives the child that forked it, then exits."""

_RECV_SIZE = 4096

LINGER_SECONDS = 1.0
LINGER_BYTES = 16 * 1024 * 1024
"""After an answer sent before the request was read to its end, how long and how much the
child reads and discards of what the client still sends (``linger``)."""


def run_child(fd: int, listen_fd: int | None, timeout: float, work_ms: int) -> NoReturn:
    """The whole life of a forked child: serve the client socket ``fd``, then exit.

    ``listen_fd`` is the parent's listening socket, which the child closes;
    None under ``--child-keeps-listener``, the fault that keeps it open: while
    any child holds it the port stays in LISTEN after the parent is gone (a
    restart fails with EADDRINUSE) and connections queued on it are never
    accepted.

    It leaves with ``os._exit``, so nothing of the parent's (buffers, atexit
    hooks) runs twice. The parent's signal handlers stay: SIGTERM's ends a
    child, SIGINT's lets it finish its request (see
    ``ForkingHTTPServer._request_stop``), and SIGCHLD never comes to a child,
    which forks nothing.
    """
    code = EXIT_CRASHED
    try:
        # The second rule of the tutorial: the child closes the listening
        # socket, so the port closes when the parent closes its copy.
        if listen_fd is not None:
            close(listen_fd)
        code = serve_connection(fd, timeout, work_ms)
    finally:
        _exit(code)


def run_child_leaving_orphan(
    fd: int, listen_fd: int | None, timeout: float, work_ms: int
) -> NoReturn:
    """``--orphans``: serve as :func:`run_child` does, then leave a grandchild and exit.

    The double fork of a shell's ``cmd &`` or a CGI script's background job: the
    grandchild outlives its parent, so the kernel hands it to the nearest child
    subreaper or to PID 1 of the PID namespace, and its zombie is theirs to reap,
    not the server's. It lives ORPHAN_SECONDS and exits. It is forked after the
    answer is sent and the client socket closed, so the client sees the same
    answer, latency and end of file as without the flag. The server chooses this
    function once, at start, so without the flag the child's path is unchanged.
    """
    code = EXIT_CRASHED
    try:
        if listen_fd is not None:
            close(listen_fd)
        code = serve_connection(fd, timeout, work_ms)
        close(fd)
        try:
            orphan = fork()
        except OSError:  # the pids limit: counted in the child's exit status, not hidden
            code = EXIT_NO_ORPHAN
        else:
            if orphan == 0:
                sleep(ORPHAN_SECONDS)
                code = EXIT_ORPHAN
    finally:
        _exit(code)


def serve_connection(fd: int, timeout: float, work_ms: int) -> int:
    """Handle exactly one request on the client socket ``fd``; return the child's exit code."""
    try:
        head, more = read_head(fd, timeout)
    except BadHead as bad:
        if bad.reply is not None and _send_quietly(fd, bad.reply):
            linger(fd)
        return EXIT_CLIENT_GONE
    except OSError:
        return EXIT_CLIENT_GONE
    reply, unread = answer(head)
    if work_ms:
        sleep(work_ms / 1000)
    if not _send_quietly(fd, reply):
        return EXIT_CLIENT_GONE
    if unread or more:
        linger(fd)
    return EXIT_ANSWERED


def read_head(fd: int, timeout: float) -> tuple[bytes, bool]:
    """(the request head, whether more than the head arrived), or BadHead with what to
    answer (if anything).

    The head has almost always arrived by the time the child runs, so the first
    read is tried at once on a non-blocking socket; only a slow client makes the
    child wait (in poll), with ``timeout`` as a deadline for the whole head.
    Empty lines before the request line are skipped (RFC 9112 §2.2: some
    clients send a CRLF after a POST body), and a head whose first line can
    never be HTTP/1.x is refused as soon as that is clear, not at the deadline.
    """
    set_blocking(fd, False)
    buffer = b""
    waiting = None
    while True:
        try:
            chunk = read(fd, _RECV_SIZE)
        except BlockingIOError:
            if waiting is None:
                deadline = monotonic() + timeout
                waiting = poll()
                waiting.register(fd, POLLIN)
            remaining = deadline - monotonic()
            if remaining <= 0 or not waiting.poll(remaining * 1000):
                raise BadHead(_incomplete(buffer, timed_out=True)) from None
            continue
        if not chunk:
            raise BadHead(_incomplete(buffer, timed_out=False))
        buffer += chunk
        if buffer[:1] == b"\r" or buffer[:1] == b"\n":
            buffer = _without_empty_lines(buffer)
        end = head_end(buffer)
        if end > MAX_HEAD_BYTES or (end < 0 and len(buffer) > MAX_HEAD_BYTES):
            raise BadHead(error_answer(too_large(buffer), buffer))
        if end >= 0:
            return buffer[:end], len(buffer) > end
        if buffer and (status := hopeless_start(buffer)):
            raise BadHead(error_answer(status, buffer))


def _without_empty_lines(buffer: bytes) -> bytes:
    """``buffer`` without the CRLF (or LF) empty lines at its start."""
    while True:
        if buffer.startswith(b"\r\n"):
            buffer = buffer[2:]
        elif buffer.startswith(b"\n"):
            buffer = buffer[1:]
        else:
            return buffer


def linger(fd: int) -> None:
    """Close the way RFC 9112 §9.6 asks when input may be left unread: half-close, then drain.

    A child answers before it has read the whole request whenever the request
    carries a body (a GET with 4 MB: the greeting never needs it) or more than
    one request arrived, and for every error (a 431 to a 20 KB head). Closing a
    socket with unread input makes the kernel send a reset, and a reset can
    reach the client before it reads the answer, which it then never sees
    (Python's http.client failed with ConnectionResetError on every such GET).
    So the child shuts down its sending side (the client reads the answer and
    then end-of-file), and reads and discards what still comes until the
    client closes, or LINGER_SECONDS or LINGER_BYTES are reached (nginx's
    lingering close); past either bound it closes all the same.
    """
    try:
        sock = socket.socket(fileno=fd)
        try:
            sock.shutdown(socket.SHUT_WR)
        finally:
            sock.detach()
    except OSError:
        return
    deadline = monotonic() + LINGER_SECONDS
    discarded = 0
    waiting = poll()
    waiting.register(fd, POLLIN)
    while (remaining := deadline - monotonic()) > 0 and waiting.poll(remaining * 1000):
        try:
            chunk = read(fd, 65536)
        except BlockingIOError:
            continue
        except OSError:
            return
        discarded += len(chunk)
        if not chunk or discarded > LINGER_BYTES:
            return


def _incomplete(buffer: bytes, timed_out: bool) -> bytes | None:
    """What to answer a head that stopped short: nothing if nothing came at all."""
    if not buffer:
        return None
    return error_answer(REQUEST_TIMEOUT if timed_out else BAD_REQUEST, buffer)


class BadHead(Exception):
    """No complete head arrived; ``reply`` is the error to send, or None to just hang up."""

    def __init__(self, reply: bytes | None) -> None:
        super().__init__("incomplete request head")
        self.reply = reply


def _send_quietly(fd: int, data: bytes) -> bool:
    """Send all of ``data``; a client that hung up is not an error worth a traceback.

    Answers are a few hundred bytes and the socket is new, so its send buffer
    always has room: the (non-blocking) write completes at once.
    """
    try:
        sent = write(fd, data)
        while sent < len(data):
            data = data[sent:]
            sent = write(fd, data)
    except OSError:
        return False
    return True
