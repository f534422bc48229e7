"""The fork-per-connection server: one small parent that accepts and forks.

The tutorial's server, in the order it teaches: listen, accept a connection,
fork a child for it, and keep the two rules forking brings. The parent closes
its copy of the client socket (the child closes the listening one, in
server.child), and it reaps its children in a loop (server.reapers), because
one SIGCHLD may stand for many exits.

The parent does as little as it can per connection, because its cost is the
server's ceiling: accept, fork, close, count. Everything else (reading,
parsing, answering) happens in the child, which leaves with ``os._exit`` so no
parent state (buffers, atexit hooks) runs twice.

The main loop waits in poll on the listening socket and a wakeup pipe
(``signal.set_wakeup_fd``). Signal handlers therefore never need to do work
to be noticed: SIGTERM only sets a flag and the pipe wakes the loop, the way
gunicorn's arbiter does it.

Why ``signal`` and ``socket`` come from server.speed, and the parent warms up
and freezes its memory before serving: see server.speed.
"""

from __future__ import annotations

import errno
import os
import select
import sys
import time

from server.child import run_child, run_child_leaving_orphan, serve_connection
from server.protocol import SERVICE_UNAVAILABLE_ANSWER
from server.reapers import STRATEGIES, Counters, Strategy
from server.speed import freeze_memory, signal, socket, warm_up

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType

_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_BATCH = 32
DESCRIPTOR_PAUSE_MS = 50
"""Out of descriptors with no way to refuse a client: how long the parent waits before
accepting again (signals still wake it), instead of spinning on a readable listener."""
REJECT_WAIT_MS = 20
"""How long a refused client's request may take to arrive before the 503 is sent: closed
with the request unread, the connection is reset, and the reset can hide the 503."""


class ServerConfig:
    """The server's settings (a plain class: see Counters for why not a dataclass)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8888,
        reaper: str = "loop",
        leak_client_fd: bool = False,
        child_keeps_listener: bool = False,
        work_ms: int = 0,
        backlog: int = 1024,
        timeout: float = 5.0,
        grace: float = 5.0,
        stats_file: str | None = None,
        orphans: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.reaper = reaper
        self.leak_client_fd = leak_client_fd
        self.child_keeps_listener = child_keeps_listener
        self.work_ms = work_ms
        self.backlog = backlog
        self.timeout = timeout
        self.grace = grace
        self.stats_file = stats_file
        self.orphans = orphans


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
        # The second rule of the tutorial is the child's (server.child.run_child): it
        # closes the listening socket. The fault mode gives it none to close.
        listen_fd = None if config.child_keeps_listener else self.listener.fileno()
        self._child_main = run_child_leaving_orphan if config.orphans else run_child
        self._child_args = (listen_fd, config.timeout, config.work_ms)
        self._note_child = self.strategy.note_child
        # Before the banner: once it is printed the server is quiet and ready, and a
        # SIGTERM sent the moment it appears finds its handler (not the default death).
        warm_up(serve_connection)
        self._install_signals()

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
        listen_fd, wakeup_fd = self.listener.fileno(), self._wakeup_r
        poller = select.poll()
        poller.register(listen_fd, select.POLLIN)
        poller.register(wakeup_fd, select.POLLIN)
        freeze_memory()
        try:
            while not self._stopping:
                ready = dict(poller.poll())
                # Signals first, so a flood of connections cannot starve the reaper.
                if wakeup_fd in ready:
                    self._drain_wakeups()
                if listen_fd in ready:
                    self._accept_pending()
        finally:
            self.listener.close()
            self._finish_children()
        return self.counters

    # -- accepting and forking -----------------------------------------------

    def _accept_pending(self) -> None:
        """Accept what is queued, up to ACCEPT_BATCH: one poll per burst, not per client.

        The bound brings the loop back to the wakeup pipe in time: an unbounded
        batch under a steady flood never returned, and the wakeup strategy held
        thousands of zombies until the flood ended.

        ``_accept`` (the C method under ``socket.accept``) hands over a bare
        descriptor: the parent never builds a Python socket object per client,
        and every object the parent does not touch after a fork is a page it
        does not copy.
        """
        accept = self.listener._accept  # type: ignore[attr-defined]  # C method; typeshed omits it
        for _ in range(ACCEPT_BATCH):
            if self._stopping:
                return
            try:
                fd, _address = accept()
            except BlockingIOError:
                if self._spare_fd is None:  # lost while descriptors were short: take it back
                    self._spare_fd = _open_spare()
                return
            except OSError as error:
                if error.errno in _OUT_OF_DESCRIPTORS:
                    self._out_of_descriptors()
                    return
                # ECONNABORTED and friends: that client is gone, the next may not be.
                continue
            self.counters.accepted += 1
            self._fork_for(fd)

    def _fork_for(self, fd: int) -> None:
        # Looked up before the fork: this line runs (and was warmed up) in the parent,
        # while in the child every lookup is one more object, and page, to copy.
        child_main, child_args, note_child = self._child_main, self._child_args, self._note_child
        try:
            pid = os.fork()
        except OSError:
            self.counters.fork_failures += 1
            self._reject(fd)
            return
        if pid == 0:
            child_main(fd, *child_args)
        if note_child is not None:
            note_child(pid)
        counters = self.counters
        counters.forked += 1
        unreaped = counters.forked - counters.reaped
        if unreaped > counters.peak_unreaped:
            counters.peak_unreaped = unreaped
        # The first rule of the tutorial: the parent closes its copy of the client
        # socket. The fault mode keeps it, and leaks one descriptor per request.
        if not self.config.leak_client_fd:
            os.close(fd)

    def _reject(self, fd: int) -> None:
        """Answer 503 from the parent itself, without blocking on a slow client."""
        self.counters.rejected += 1
        os.set_blocking(fd, False)
        arrived = select.poll()  # poll(2) needs no descriptor of its own: none to spare
        arrived.register(fd, select.POLLIN)
        arrived.poll(REJECT_WAIT_MS)  # a client that connected an instant ago is still sending
        try:
            # Reading what arrived avoids a reset that would hide the 503.
            os.read(fd, 65536)
        except OSError:
            pass
        try:
            os.write(fd, SERVICE_UNAVAILABLE_ANSWER)
        except OSError:
            pass
        os.close(fd)

    def _out_of_descriptors(self) -> None:
        """accept() failed for want of a descriptor: refuse one client with the spare, or wait.

        A connection left in the queue keeps the listening socket readable, so
        going straight back to poll would spin at full CPU for as long as
        descriptors are short. The spare (a descriptor opened at start for
        this) is closed to make room, one client accepted and refused with
        503, and the spare opened again. Where that does not work (the spare is
        gone, or the limit was lowered below what the parent holds, or the whole
        system is out) the parent waits DESCRIPTOR_PAUSE_MS and tries again;
        the spare comes back once an accept finds the queue empty.
        """
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            try:
                fd, _address = self.listener._accept()  # type: ignore[attr-defined]  # as above
            except OSError:
                fd = None
            if fd is not None:
                self.counters.accepted += 1
                self._reject(fd)
            self._spare_fd = _open_spare()
            if fd is not None:
                return
        self._pause()

    def _pause(self) -> None:
        """Wait DESCRIPTOR_PAUSE_MS, or less if a signal comes (it is handled here)."""
        waiting = select.poll()  # poll(2) needs no descriptor of its own, unlike epoll
        waiting.register(self._wakeup_r, select.POLLIN)
        if waiting.poll(DESCRIPTOR_PAUSE_MS):
            self._drain_wakeups()

    # -- signals -------------------------------------------------------------

    def _install_signals(self) -> None:
        for fd in (self._wakeup_r, self._wakeup_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        self.strategy.install(self.counters)

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: the parent stops; a child keeps its promise on SIGINT.

        Children inherit this handler with the fork, so it tells by PID, and only
        when a signal comes, where it runs. Ctrl-C on a terminal sends SIGINT to
        the whole foreground process group, children included: a child ignores
        it and finishes its request, and the parent, which got the same SIGINT,
        waits for it up to --grace and then ends it (``_finish_children``).
        PEP 475 makes the child's interrupted poll, sleep, read or write resume
        after the handler returns. SIGTERM is sent to one process, so a child
        that gets it ends as the default action would.

        Nothing here runs per request. The alternatives cost more or do not
        work: ``signal(SIGINT, SIG_IGN)`` in each child is a system call per
        fork; SIGINT blocked in the parent before forking (the mask is inherited)
        would keep it from the parent too, whose poll loop learns of signals
        only through their delivery (``set_wakeup_fd``); and SIG_IGN in the
        parent is the same problem.
        """
        if os.getpid() != self._pid:
            if signum == signal.SIGINT:
                return
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

    # -- shutdown ------------------------------------------------------------

    def _finish_children(self) -> None:
        """Give in-flight children a grace period, then reap (or end) every one.

        SIGCHLD is blocked and waited for with sigtimedwait, so no handler runs
        during shutdown and no exit can be missed. Under ``none`` the parent
        waits all the same, but collects nothing: each child that ends stays a
        zombie until the parent exits (init, or the nearest subreaper, reaps
        them then): that is the bug being shown. Whatever is reaped from the
        moment the main loop stopped counts as ``reaped_at_shutdown``, not
        ``reaped`` (while serving).
        """
        counters = self.counters
        reaped_serving = counters.reaped
        signal.set_wakeup_fd(-1)
        zombies: set[int] = set()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        # From here an exiting child becomes a zombie even under "ignore".
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        deadline = time.monotonic() + self.config.grace
        while self._children_left(zombies):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_children()
                deadline = time.monotonic() + self.config.grace
                continue
            signal.sigtimedwait({signal.SIGCHLD}, remaining)
        counters.reaped_at_shutdown = counters.reaped - reaped_serving
        counters.reaped = reaped_serving

    def _children_left(self, zombies: set[int]) -> bool:
        """Whether a child still runs: reaping those that ended, or under ``none``
        leaving them as they are (``zombies`` remembers those seen dead)."""
        if self.strategy.reaps:
            return self.strategy.collect(self.counters)
        return _any_child_running(zombies)

    def write_counters(self) -> bool:
        """Print the counters line, then write --stats-file; False if that file failed.

        The line comes first and always: a stats file that cannot be written (a
        read-only place, a missing directory) must not lose what stdout's reader
        gets. The failure is one warning line on stderr, and False makes the
        exit status 1: what was asked for was not done.
        """
        import json  # only at shutdown: the serving parent stays smaller without it

        line = json.dumps(self.counters.as_dict(reaps_counted=self.strategy.reaps_counted))
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        path = self.config.stats_file
        if path is None:
            return True
        try:
            tmp = path + ".tmp"
            with open(tmp, "w") as stats:
                stats.write(line + "\n")
            os.replace(tmp, path)
        except OSError as error:
            print(
                f"python -m server: warning: cannot write --stats-file {path}: {error.strerror}",
                file=sys.stderr,
                flush=True,
            )
            return False
        return True


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    # An ASCII host goes as bytes: given a str, getaddrinfo runs the IDNA codec,
    # whose import (re, unicodedata, stringprep) would stay in the parent for good.
    name = (host.encode("ascii") if host.isascii() else host) if host else None
    family, kind, proto, _name, address = socket.getaddrinfo(
        name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
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


def _any_child_running(zombies: set[int]) -> bool:
    """Whether a child has not exited yet, without reaping any (Linux: read from /proc).

    ``zombies`` remembers the children already seen dead, so each is read once:
    under ``none`` they are every child the server ever forked.
    """
    for pid in _children_pids():
        if pid in zombies:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                state = stat.read().rpartition(b")")[2].split()[0]
        except OSError:
            continue  # gone: not running
        if state != b"Z":
            return True
        zombies.add(pid)
    return False


def _children_pids() -> list[int]:
    pids: list[int] = []
    tasks = f"/proc/{os.getpid()}/task"
    for task in os.listdir(tasks):
        try:
            with open(f"{tasks}/{task}/children") as children:
                pids.extend(int(p) for p in children.read().split())
        except OSError:
            continue
    return pids
