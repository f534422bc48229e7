"""What keeps the forking server fast, in one place: the rationale and the measures.

A forking server's speed is its fork. ``fork()`` copies the parent's page
tables, so it costs in proportion to the parent's memory; afterwards every page
parent and child still share is copy-on-write, and each page either of them
writes to is a page fault and a 4 KiB copy (about 3 µs each here). CPython
writes to every object it uses (reference counts), so what a child touches, it
copies. Hence two aims: a small parent, and a child that touches little. Each
measure below serves one of them; measured with wrk and perf, together they
took a child from 161 page faults per ``GET /`` to 98 and the server from 0.93
to over 1.06 times a 20-line tutorial server that parses nothing.

Applied from here:

- ``signal`` and ``socket`` below are the C modules ``_signal`` and ``_socket``.
  The Python modules of those names wrap their constants in enums, and the
  enum machinery they import is over half a megabyte that every fork would
  copy and every child tear down. The server imports these two names from
  here, so its code reads as the tutorial's does (``signal.signal(signal.SIGCHLD,
  ...)``).
- ``warm_up`` runs the child's code in the parent before the first fork, so
  that CPython's specialising interpreter rewrites that bytecode once, there,
  not in every child.
- ``freeze_memory`` moves everything allocated at start out of the garbage
  collector's reach, so a collection in a child never writes to those pages.
- ``bind_symbols_now`` restarts the program once with ``LD_BIND_NOW=1``, so
  that the dynamic linker resolves every library function in the parent, not
  in each child.

Kept where they act, and said there: the parent imports no argparse, urllib,
dataclasses, typing or json (server.__main__ parses its own flags; json is
imported at shutdown), which cost a quarter of the throughput; it accepts bare
descriptors, not socket objects (server.forking); a child calls names bound
once and answers plain requests by a short path (server.child,
server.protocol.answer). And the source is compiled to bytecode before the
server starts (``make serve`` and the harness run compileall): a server that
compiles its own source keeps the compiler's memory for good.
"""

from __future__ import annotations

import gc
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    # The checker reads the public modules' annotations (typeshed has no _signal); they
    # name the same functions and constants.
    import signal
    import socket
    from collections.abc import Callable
else:
    import _signal as signal
    import _socket as socket

__all__ = ["bind_symbols_now", "freeze_memory", "signal", "socket", "warm_up"]

WARM_UP_HEADS = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"HEAD /Dan HTTP/1.0\r\n\r\n",
    b"GET /Zhuibing%20Dan HTTP/1.1\r\nHost: localhost\r\nUser-Agent: w\r\nAccept: */*\r\n\r\n",
)
WARM_UP_ROUNDS = 100
"""Enough runs for CPython to finish specialising the code (a few dozen suffice)."""


def warm_up(serve_connection: Callable[[int, float, int], int]) -> None:
    """Serve a few requests over socket pairs in the parent, before it forks.

    CPython rewrites a function's bytecode in place while it warms up (3.11's
    specialising interpreter). Done in every child, that writing copies pages
    that parent and child could have shared; done here once, children inherit
    code that is already settled.
    """
    for _ in range(WARM_UP_ROUNDS):
        for head in WARM_UP_HEADS:
            client, server = socket.socketpair()
            try:
                client.sendall(head)
                serve_connection(server.fileno(), 1.0, 0)
            finally:
                client.close()
                server.close()


def freeze_memory() -> None:
    """Collect once, then freeze: a collection in a child never touches these pages."""
    gc.collect()
    gc.freeze()


def bind_symbols_now() -> OSError | None:
    """Start this program over, once, with LD_BIND_NOW=1 (Linux); the error if exec failed.

    The dynamic linker resolves a library function on its first call, in each
    process. A forked child calls some that the parent never has (``_exit``,
    and what CPython's after-fork code uses), so every child looked them up
    itself: it read the libraries' symbol tables and wrote their address
    tables, about 15 page faults per request (measured with perf). With
    LD_BIND_NOW the parent resolves everything once, at start. exec keeps the
    PID, so whoever started the server, and samples it, sees no difference.

    Returns None when no restart is needed; on success it does not return. An
    exec that fails (the interpreter moved, a seccomp policy) leaves this
    process as it was, and the caller serves from it, only slower per child.
    """
    if sys.platform != "linux" or os.environ.get("LD_BIND_NOW") or not sys.executable:
        return None
    argv = [sys.executable, *sys.orig_argv[1:]]
    try:
        os.execve(sys.executable, argv, {**os.environ, "LD_BIND_NOW": "1"})
    except OSError as error:
        return error
    return None
