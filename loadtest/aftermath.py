"""What a child that keeps the listening socket does: the port outlives its parent.

The tutorial's first duty after ``fork()`` has two halves: the parent closes its copy of
the client socket, the child closes the listening socket. The kernel counts the
descriptors that refer to a socket and closes it only when the count reaches zero, so a
child that keeps its copy keeps the port open for as long as it runs, whatever becomes of
the parent. After the load of a scenario whose children keep it
(``Scenario.shows_listener_aftermath``), and before the harness stops the server:

1. It holds a few requests in flight: each head sent but its last line, so each child
   waits for the rest and is sure to be running; it waits until they hold the socket.
2. It kills the parent alone: SIGKILL to its PID, not to its process group, as a crash
   or the OOM killer would. Not SIGTERM: on SIGTERM our server closes its own copy and
   then waits for its children in flight before it exits, so the port never outlives it
   (it is held only while the parent shuts down, and a restart that waits for the old
   parent finds it free). The price: a killed parent prints no counters.
3. With the parent reaped: the port is still in LISTEN (the kernel's table); a new
   server's bind, with SO_REUSEADDR, fails with EADDRINUSE; a few probe connections are
   made, and the kernel completes their handshakes and queues them on the socket (the
   LISTEN row's accept queue, ``rx_queue``), where nobody will ever accept them.
4. It lets the held requests finish one at a time, RELEASE_GAP_S apart: each child still
   answers its own client without its parent, then exits, and the port stays open until
   the last of them has gone. Then each probe's fate (a reset: the kernel resets the
   connections still queued when a listening socket closes; never an answer), and a bind
   that now succeeds.

Holders are counted throughout from the server's cgroup (``cgroup.procs``), or without
one from the parent's children and the harness's (their subreaper once the parent is
gone), never from the parent's children list alone, which dies with it.

This is the one place the harness connects to a server: its own, on loopback, with a few
bounded connections, to give the parent children in flight and to show connections queued
on a port nobody accepts on. Everywhere else it reads the kernel's tables instead (a
connection is a request, and for a forking server one more child).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from collections.abc import Callable

from diagnostics.contract import ListenerAftermath
from diagnostics.errors import AccessDenied, NoSuchProcess
from diagnostics.inherited import ListenerHolders
from diagnostics.proctable import task_children
from diagnostics.sockets import tcp_sockets
from loadtest.cgroup import PidsCgroup
from loadtest.processes import reap_orphans, wait_for
from loadtest.target import Target

HELD = 3
"""Requests held in flight when the parent is killed: children certain to hold the socket."""
PROBES = 3
"""Connections made to the port once only children hold it."""
RELEASE_GAP_S = 0.1
"""Between letting one held request finish and the next: the holders leave one by one."""
LOOK_GAP_S = 0.005
START_TIMEOUT_S = 5.0
"""For the held requests' children to appear, and for the killed parent to be reaped."""
CONNECT_TIMEOUT_S = 1.0
EXIT_TIMEOUT_S = 10.0
"""For the last holder to exit once its request may finish (it works --work-ms first)."""
HEAD = b"GET /aftermath HTTP/1.1\r\nHost: reaperlab\r\n"
END_OF_HEAD = b"\r\n"
PROBE = b"GET /probe HTTP/1.1\r\nHost: reaperlab\r\n\r\n"
ANSWERED = b"HTTP/1.1 200 "
SIGNAL = signal.SIGKILL
KILLED_ALONE = (
    "the listener-leak aftermath: the parent killed alone, on purpose, while its children"
    " hold the listening socket"
)


def show(target: Target, cgroup: PidsCgroup | None, work_ms: int) -> ListenerAftermath:
    """Kill the server's parent alone and record what its children do with the port (the
    module's steps). The server is left dead and reaped, and so are its children; an
    error (a step that could not be done) is in the record's ``errors``."""
    return _Aftermath(target, cgroup, work_ms).run()


class _Aftermath:
    def __init__(self, target: Target, cgroup: PidsCgroup | None, work_ms: int) -> None:
        self.target = target
        self.parent = target.pid
        self.port = target.port
        self.work_ms = work_ms
        self.family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
        self.members: Callable[[], list[int]]
        if cgroup is not None:
            self.members, counted_from = cgroup.members, "the server's cgroup.procs"
        else:
            self.members = self._family
            counted_from = "the parent's children, then the harness's (their subreaper)"
        self.record = ListenerAftermath(
            signal=SIGNAL.name,
            parent_pid=self.parent,
            address=f"{target.host}:{self.port}",
            counted_from=counted_from,
            held=HELD,
        )
        self.holders = ListenerHolders(self.parent)

    def run(self) -> ListenerAftermath:
        record = self.record
        held: list[socket.socket] = []
        probes: list[socket.socket | None] = []
        try:
            if not self.holders.links:
                record.errors.append(f"the parent (PID {self.parent}) listens on nothing")
                return record
            held = self._hold()
            if not wait_for(self._held_children_run, START_TIMEOUT_S, LOOK_GAP_S):
                record.errors.append(
                    f"the {HELD} held requests' children had not all started within"
                    f" {START_TIMEOUT_S:g} s: the parent was not killed"
                )
                return record
            record.holders_at_stop = self._kill()
            if record.parent_gone_at is None:
                return record
            record.listening_after_stop = bool(self._look()[1])
            record.bind_tried_at, record.bind_while_held = time.time(), self._bind()
            probes = self._probe()
            self._release(held)
            self._wait_until_free()
            record.probe_fates = _fates(probes)
            record.held_answered = sum(_answer(conn).startswith(ANSWERED) for conn in held)
            record.bind_after = self._bind()
        finally:
            for conn in [*held, *probes]:
                if conn is not None:
                    conn.close()
            reap_orphans()  # the parent's children, adopted by the harness
        return record

    # -- the steps -----------------------------------------------------------

    def _hold(self) -> list[socket.socket]:
        """HELD requests in flight, each head short of its last line."""
        held = []
        for _ in range(HELD):
            conn = socket.create_connection((self.target.host, self.port), CONNECT_TIMEOUT_S)
            conn.sendall(HEAD)
            held.append(conn)
        return held

    def _kill(self) -> int:
        """SIGKILL to the parent alone, then reap it; the holders at the kill."""
        holders = self._look()[0]
        self.record.stopped_at = time.time()
        self.target.process.kill_alone(SIGNAL, KILLED_ALONE)
        if self.target.process.running():
            self.record.errors.append(
                f"the parent (PID {self.parent}) did not die of {SIGNAL.name}"
            )
        else:
            self.record.parent_gone_at = time.time()
        return holders

    def _bind(self) -> str:
        """A new server's bind to the port, as a restart would do it: "ok", or the errno."""
        with socket.socket(self.family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.target.host, self.port))
            except OSError as error:
                return errno.errorcode.get(error.errno or 0, str(error.errno))
        return "ok"

    def _probe(self) -> list[socket.socket | None]:
        """PROBES connections, each with a whole request; None for one refused. Then the
        accept queue, and whether any probe got an answer while a child held the socket."""
        probes: list[socket.socket | None] = []
        self.record.probed_at = time.time()
        for _ in range(PROBES):
            try:
                conn = socket.create_connection((self.target.host, self.port), CONNECT_TIMEOUT_S)
                conn.sendall(PROBE)
            except OSError:
                probes.append(None)
                continue
            probes.append(conn)
        self.record.probes = PROBES
        self.record.queued = self._queued()
        self._look()
        self.record.answered_while_held = sum(
            conn is not None and _answered_now(conn) for conn in probes
        )
        return probes

    def _release(self, held: list[socket.socket]) -> None:
        """Let the held requests finish one by one, looking in between."""
        for number, conn in enumerate(held):
            if number:
                self._look_for(RELEASE_GAP_S)
            try:
                conn.sendall(END_OF_HEAD)
            except OSError as error:
                self.record.warnings.append(f"a held request could not finish: {error.strerror}")
            self.record.released_at.append(time.time())

    def _wait_until_free(self) -> None:
        """Look until no process holds the socket and the port is out of LISTEN."""
        deadline = time.monotonic() + self.work_ms / 1000 + EXIT_TIMEOUT_S
        while time.monotonic() < deadline:
            holders, listening = self._look()
            if holders == 0 and self.record.last_holder_gone_at is None:
                self.record.last_holder_gone_at = time.time()
            if not listening:
                self.record.port_free_at = time.time()
                return
            time.sleep(LOOK_GAP_S)
        self.record.errors.append(
            f"the port was still in LISTEN {self.work_ms / 1000 + EXIT_TIMEOUT_S:g} s after the"
            " held requests could finish"
        )

    # -- looking -------------------------------------------------------------

    def _look(self) -> tuple[int, int]:
        """(holders, listening 1/0) now, added to the timeline.

        The port first, then its holders: a socket closed cannot be held again, so a look
        that finds the port free finds no holder, and one that finds a holder finds the
        port in LISTEN, however the last holder's exit falls between the two reads.
        """
        listening = int(any(s.listening and s.port == self.port for s in tcp_sockets().values()))
        holders = self.holders.count(self.members())
        self.record.timeline.append([round(time.time(), 6), holders, listening])
        return holders, listening

    def _held_children_run(self) -> bool:
        """Whether the parent has a child for each held request (they wait for the rest of
        their heads), with a look taken on the way."""
        self._look()
        try:
            return len(task_children(self.parent)) >= HELD
        except (NoSuchProcess, AccessDenied):
            return False

    def _look_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._look()
            time.sleep(LOOK_GAP_S)

    def _queued(self) -> int:
        return sum(
            s.rx_queue for s in tcp_sockets().values() if s.listening and s.port == self.port
        )

    def _family(self) -> list[int]:
        """Without a cgroup: the parent's children while it lives, and the harness's."""
        pids = set()
        for pid in (self.parent, os.getpid()):
            try:
                pids |= task_children(pid)
            except (NoSuchProcess, AccessDenied):
                continue
        return sorted(pids)


def _answered_now(conn: socket.socket) -> bool:
    """Whether bytes of an answer have come on ``conn`` yet, without waiting for any."""
    conn.settimeout(0)  # with a timeout, Python waits for input before it reads
    try:
        return bool(conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # nothing yet (EAGAIN), or no answer at all
        return False


def _answer(conn: socket.socket) -> bytes:
    """What came on ``conn`` before it closed (b"" on a reset or a timeout)."""
    conn.settimeout(CONNECT_TIMEOUT_S)
    chunks = []
    try:
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    except OSError:
        pass
    return b"".join(chunks)


def _fates(probes: list[socket.socket | None]) -> dict[str, int]:
    fates: dict[str, int] = {}
    for conn in probes:
        fate = "refused" if conn is None else _fate(conn)
        fates[fate] = fates.get(fate, 0) + 1
    return fates


def _fate(conn: socket.socket) -> str:
    """How a probe ended: "reset", "closed" (an end of file), "answered", "no answer"."""
    conn.settimeout(CONNECT_TIMEOUT_S)
    try:
        return "answered" if conn.recv(1) else "closed"
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "no answer"
    except OSError as error:
        return errno.errorcode.get(error.errno or 0, "error")
