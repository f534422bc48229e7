"""The fork-per-connection server: one small parent that accepts and forks.

The parent does as little as it can per connection, because its cost is the
server's ceiling: accept, fork, close its copy of the client socket, count.
Everything else (reading, parsing, answering) happens in the child, which then
leaves with ``os._exit`` so no parent state (buffers, atexit hooks) runs twice.

The main loop waits in a selector on the listening socket and a wakeup pipe
(``signal.set_wakeup_fd``). Signal handlers therefore never need to do work
to be noticed: SIGTERM only sets a flag and the pipe wakes the loop, the way
gunicorn's arbiter does it.

A fork costs in proportion to what the child touches: after fork every page
the parent and the child share is copy-on-write, and each page the child
writes to (CPython writes reference counts on every object it uses) is a page
fault and a 4 KiB copy. So the child does as little Python as it can: it does
not reset signal handlers (the handlers know when they run in a child), and
the code it runs was warmed up in the parent before forking began.
"""

from __future__ import annotations

import errno
import gc
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

from server.child import serve_connection, warm_up
from server.protocol import SERVICE_UNAVAILABLE
from server.reapers import STRATEGIES, Counters, Strategy, reap_all

_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_EXIT_CHILD_CRASHED = 70


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8888
    reaper: str = "loop"
    leak_client_fd: bool = False
    work_ms: int = 0
    backlog: int = 1024
    timeout: float = 5.0
    grace: float = 5.0
    stats_file: Path | None = None


class ForkingHTTPServer:
    """Accepts connections and forks one child per connection."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.counters = Counters()
        self.strategy: Strategy = STRATEGIES[config.reaper]()
        self.listener = _listen(config.host, config.port, config.backlog)
        self._stopping = False
        self._pid = os.getpid()
        self._wakeup_r, self._wakeup_w = os.pipe()
        self._spare_fd = _open_spare()
        # Before the banner: once it is printed the server is quiet and ready.
        warm_up()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def serve_forever(self) -> Counters:
        """Serve until SIGTERM or SIGINT, then shut down; return the final counters."""
        self._install_signals()
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        selector.register(self._wakeup_r, selectors.EVENT_READ)
        # Everything allocated so far stays put: the collector then never touches
        # (and copy-on-write duplicates) these pages in a forked child.
        gc.collect()
        gc.freeze()
        try:
            while not self._stopping:
                for key, _events in selector.select():
                    if key.fileobj is self.listener:
                        self._accept_pending()
                    else:
                        self._drain_wakeups()
        finally:
            selector.close()
            self.listener.close()
            self._finish_children()
        return self.counters

    # -- signals -------------------------------------------------------------

    def _install_signals(self) -> None:
        for fd in (self._wakeup_r, self._wakeup_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        self.strategy.install(self.counters)

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if os.getpid() != self._pid:
            # A child inherited this handler (resetting it in every child would cost
            # more than the request): end the child as the default action would.
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        self._stopping = True

    def _drain_wakeups(self) -> None:
        try:
            signals = os.read(self._wakeup_r, 4096)
        except BlockingIOError:
            return
        if signal.SIGCHLD in signals:
            self.strategy.on_sigchld_wakeup(self.counters)

    # -- accepting and forking -----------------------------------------------

    def _accept_pending(self) -> None:
        """Accept every connection already queued: one select per burst, not per client."""
        while not self._stopping:
            try:
                conn, _address = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in _OUT_OF_DESCRIPTORS:
                    self._reject_with_spare_descriptor()
                    return
                # ECONNABORTED and friends: that client is gone, the next may not be.
                continue
            self.counters.accepted += 1
            self._fork_for(conn)

    def _fork_for(self, conn: socket.socket) -> None:
        try:
            pid = os.fork()
        except OSError:
            self.counters.fork_failures += 1
            self._reject(conn)
            return
        if pid == 0:
            self._run_child(conn)
        self.counters.forked += 1
        if self.config.leak_client_fd:
            conn.detach()  # the seed's first bug: the parent's copy stays open forever
        else:
            conn.close()

    def _run_child(self, conn: socket.socket) -> NoReturn:
        """Never returns: the child answers and leaves with os._exit."""
        code = _EXIT_CHILD_CRASHED
        try:
            gc.disable()
            # Signals no longer wake the parent from here. The handlers stay: SIGTERM's
            # and SIGINT's end a child themselves, and SIGCHLD never comes to a child,
            # which forks nothing.
            signal.set_wakeup_fd(-1)
            # The second rule of the tutorial: the child closes the listening
            # socket, so the port closes when the parent closes its copy.
            os.close(self.listener.detach())
            code = serve_connection(conn, self.config.timeout, self.config.work_ms)
        finally:
            os._exit(code)

    def _reject(self, conn: socket.socket) -> None:
        """Answer 503 from the parent itself, without blocking on a slow client."""
        self.counters.rejected += 1
        conn.setblocking(False)
        try:
            # Reading what already arrived avoids a reset that would hide the 503.
            conn.recv(65536)
        except OSError:
            pass
        try:
            conn.send(SERVICE_UNAVAILABLE)
        except OSError:
            pass
        conn.close()

    def _reject_with_spare_descriptor(self) -> None:
        """Out of descriptors: free the spare one to accept and refuse a client.

        Without this the pending connection stays readable and the loop spins.
        """
        if self._spare_fd is None:
            return
        os.close(self._spare_fd)
        try:
            conn, _address = self.listener.accept()
        except OSError:
            conn = None
        if conn is not None:
            self.counters.accepted += 1
            self._reject(conn)
        self._spare_fd = _open_spare()

    # -- shutdown ------------------------------------------------------------

    def _finish_children(self) -> None:
        """Give in-flight children a grace period, then reap (or end) every one.

        SIGCHLD is blocked and waited for with sigtimedwait, so no handler runs
        during shutdown and no exit can be missed. Under ``none`` the zombies
        are left as they are: that is the bug being shown.
        """
        signal.set_wakeup_fd(-1)
        if not self.strategy.reaps:
            return
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        # From here an exiting child becomes a zombie even under "ignore".
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        deadline = time.monotonic() + self.config.grace
        while reap_all(self.counters):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_children()
                deadline = time.monotonic() + self.config.grace
                continue
            signal.sigtimedwait({signal.SIGCHLD}, remaining)
        if self.strategy.name == "ignore":
            # Every child is gone; the kernel reaped those that exited earlier.
            self.counters.reaped = self.counters.forked

    def write_counters(self) -> None:
        import json  # only at shutdown: the serving parent stays smaller without it

        line = json.dumps(self.counters.as_dict())
        if self.config.stats_file is not None:
            tmp = self.config.stats_file.with_name(self.config.stats_file.name + ".tmp")
            tmp.write_text(line + "\n")
            os.replace(tmp, self.config.stats_file)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    family, kind, proto, _name, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(backlog)
        listener.setblocking(False)
    except OSError:
        listener.close()
        raise
    return listener


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _kill_children() -> None:
    """End children still running after the grace period (Linux: read from /proc)."""
    for pid in _children_pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _children_pids() -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return pids
