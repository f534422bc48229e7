"""Every fork, exit and reap of a process tree, into events.csv, from the kernel's sources.

``EventRecorder(root_pid, folder).start()`` before the load, ``.stop()`` after it: the
stop returns the :class:`~diagnostics.contract.EventSummary` (sources, events lost,
figures) that scenario.json keeps, and events.csv holds one row per child.

Where the kernel stamps the reaps too (root, BTF: :mod:`diagnostics.bpf_reaps`), one
thread reads them and the process-events connector (fork, exec and exit, kernel
timestamps: :mod:`diagnostics.proc_connector`) every ``BATCH_INTERVAL_S`` and applies
both in the order of their timestamps: no wake-up per child, and no time moved by when
the reader came by. Elsewhere the thread waits (epoll) on the connector and one pidfd
per child (exit, and the reap: :mod:`diagnostics.pidfds`), waking for each; the
connector's queue is drained before any pidfd is looked at, so a child's fork and exit
are known before its reap, and a parent's exit before the reaps that follow it.

Where a source is missing the recorder scans /proc instead, every ``scan_interval``
seconds, and the summary says which figures are sampled and why:
- no connector (another namespace, an old kernel without root): children are found
  in their parents' children lists; a child that lives less than a scan is missed;
- no pidfd hang-up at reap (a kernel before 6.9, or switched off): a zombie is
  reaped when a scan finds it gone;
- events lost (the receive buffer overflowed): one scan finds the children missed.

A child is known by PID and start time. Its pidfd is opened when its fork event is
read, which may be after it exited, was reaped, and its PID went to a newer process:
the pidfd is kept only if the process it names started no later than the fork
event; a child found gone has a reap time that is only a bound (reap_source says so).
Rows are appended as children are reaped (a killed recorder keeps those), the rest at
the stop. The thread never raises into its owner: a failure ends the recording,
is kept in ``error`` and told once to ``on_error``.
"""

from __future__ import annotations

import bisect
import logging
import operator
import os
import random
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from diagnostics import clocks, contract, events, pidfds, procfs
from diagnostics.bpf_reaps import ReapProbe, ReapProbeUnavailable
from diagnostics.contract import ChildRecord, EventSummary
from diagnostics.events import Child, ChildTree, TreeCounts
from diagnostics.lifetimes import percentile, summary_figures
from diagnostics.proc_connector import (
    BATCH,
    EXEC,
    EXIT,
    FORK,
    RECEIVE_BUFFER,
    Connector,
    ConnectorUnavailable,
    Event,
)

log = logging.getLogger(__name__)

SCAN_INTERVAL_S = 0.02
"""How often /proc is scanned for what a missing source does not tell."""
PROBE_INTERVAL_S = 0.1
"""Mean gap between the latency probes (random, so they land at every phase of the loop)."""
MAX_FORKS_PER_S = 1_000_000
"""No machine forks faster: so no PID can come round again within (free PIDs / this)
seconds of a fork, and a pidfd opened that soon names the child without a look in /proc."""
SAFE_LAG_REFRESH_NS = 100_000_000
SAME_START_TICKS = 5
"""A process started at most this many clock ticks before a fork event is the child of
that event: the kernel stamps the start a little before it sends the event."""
EXIT_GRACE_NS = 250_000_000
"""How long a reaped child's row waits for its exit event: the kernel sends it after the
child is a zombie, so a parent quick to reap can have it gone before its exit is told
(the more so on a loaded machine)."""
DESCRIPTORS_KEPT = 64
"""Descriptors never taken for pidfds (the recorder reads /proc; its owner has files and
pipes): at least this many, or an eighth of the limit."""
FLUSH_INTERVAL_NS = 50_000_000
"""How often the rows of the children reaped are made and appended to events.csv."""
MAX_READY = 1024
"""Descriptors one wait reports at most (the rest at the next)."""
DRAIN_BATCHES = 16
"""Connector batches read before the pidfds get their turn, under a flood."""
BATCH_INTERVAL_S = 0.1
"""How often the reaps stamped by the kernel and the connector's events are read (where
the kernel stamps the reaps): the live counts lag by this much, no time does."""
ORDER_MARGIN_NS = 2_000_000
"""Events stamped this close to a read wait for the next one: an event is queued a few
microseconds after its stamp, so one source's later event may be read before the
other's earlier one, and they are applied in the order of their stamps."""
COMMANDS_KEPT = 4096
"""Exec command lines kept before those older than a second are forgotten (most are not
the tree's)."""
REAP = -1
"""The kind of a reap stamped by the kernel among the connector's events (not a
connector value)."""
_stamp = operator.itemgetter(1)
"""An event's timestamp (a C call: the sort of every batch calls it for each event)."""
SWITCHED_OFF = "switched off"
NOT_STARTED = "not started"
_HANGUP = select.EPOLLHUP | select.EPOLLERR


class EventRecorder:
    """Records the children of ``root_pid``'s tree into ``folder``/events.csv.

    ``connector``, ``pidfds`` and ``reap_probe`` False switch a source off (for tests of
    the fallbacks; the reap probe needs the connector and stands in for pidfds);
    ``receive_buffer`` is what the connector's socket asks for (the kernel may give less).
    """

    def __init__(
        self,
        root_pid: int,
        folder: Path,
        *,
        connector: bool = True,
        pidfds: bool = True,
        scan_interval: float = SCAN_INTERVAL_S,
        receive_buffer: int = RECEIVE_BUFFER,
        reap_probe: bool = True,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if not scan_interval > 0:
            raise ValueError(f"scan_interval must be > 0, got {scan_interval!r}")
        self.root = root_pid
        self.path = Path(folder) / contract.EVENTS
        self.scan_interval = scan_interval
        self.receive_buffer = receive_buffer
        self.on_error = on_error
        self.error: str | None = None
        self.rows: list[ChildRecord] = []
        """events.csv as read back at the stop (what the summary's figures are of)."""
        self._want_connector, self._want_pidfds = connector, pidfds
        self._want_probe = reap_probe and pidfds
        self._conn: Connector | None = None
        self._reaps: ReapProbe | None = None
        self._pending: list[Event] = []
        """Events of both sources read but stamped too recently to be applied yet."""
        self._reaps_lost = 0
        self._namespaced_reaps = False
        self._commands: dict[int, tuple[int, str]] = {}
        """The command lines of the machine's execs as the kernel saw them, by PID: (stamp,
        line), until the connector's exec event takes them (a child may be gone before its
        /proc could be read)."""
        self._early: dict[int, tuple[int, int, int]] = {}
        """Kernel-stamped reaps of children whose exit is not told yet, by PID: (stamp,
        reaper, status). The kernel stamps an exit after the parent is told, so a quick
        reap (and every reap the kernel does itself) can come first; it waits for the
        exit, EXIT_GRACE_NS at most."""
        self._released: list[tuple[Child, int, int]] = []
        """Zombies found gone when their parent exited: (child, the parent's exit, when
        looked, monotonic ns). Where no reap stamped before that look names them, the
        kernel released them with the parent (see contract.REAP_WITH_PARENT)."""
        self._final = False
        self._connector_state = self._pidfd_state = self._probe_state = NOT_STARTED
        self._tree = ChildTree(root_pid, f"[pid {root_pid}]")
        self._by_fd: dict[int, Child] = {}
        self._gone: list[tuple[Child, int]] = []
        self._held: dict[int, tuple[Child, int]] = {}
        """Reaped children whose exit event has not come yet, by PID, with a deadline."""
        self._ready: list[Child] = []
        """Reaped children whose rows are to be written at the next flush."""
        self._unwatched = 0
        self._pidfd_budget = 0
        self._safe_lag = (0, 0)
        """(until when, how long after a fork a pidfd surely names the child), in ns."""
        self._warnings: list[str] = []
        self._fd: int | None = None
        self._unwritten: list[str] = []
        self._epoll = select.epoll()
        self._stop_fd = os.eventfd(0)
        self._probe_fd = os.eventfd(0)
        self._probes: deque[int] = deque()
        self._latencies: list[int] = []
        self._stopping = threading.Event()
        self._stop_asked = False
        self._scanning = False
        """Whether the loop scans /proc every scan_interval (a source is missing)."""
        self._pidfd_ok = False
        self._thread: threading.Thread | None = None
        self._prober: threading.Thread | None = None
        self._next_scan = 0
        self._next_flush = 0
        self._started = 0.0
        self._cpu_seconds: float | None = None
        self._summary: EventSummary | None = None

    # The owner's side ------------------------------------------------------------

    def start(self) -> None:
        """Check the sources, note the tree as it is, open events.csv, start the thread.

        Raises ProcessLookupError when ``root_pid`` does not exist, OSError when
        events.csv cannot be written.
        """
        if self._thread is not None:
            raise RuntimeError("EventRecorder already started")
        if procfs.stat(self.root) is None:
            raise ProcessLookupError(f"no process with PID {self.root}")
        self._started = time.time()
        self._pidfd_state = self._connector_state = self._probe_state = SWITCHED_OFF
        if self._want_pidfds:  # before the connector: the probe's child is not ours to record
            self._pidfd_state = pidfds.probe()
            self._pidfd_ok = self._pidfd_state == pidfds.OK
            if self._pidfd_ok:
                limit = pidfds.raise_descriptor_limit()
                self._pidfd_budget = limit - max(DESCRIPTORS_KEPT, limit // 8)
        try:
            self._open()
        except BaseException as error:
            self._fail(f"the event record could not start: {error}")
            self._close_all()
            raise
        self._thread = threading.Thread(target=self._run, name=f"events-{self.root}", daemon=True)
        self._thread.start()
        if self._reaps is None:  # a poller's latency, where reaps are seen by waking for them
            self._prober = threading.Thread(target=self._probe, name="events-probe", daemon=True)
            self._prober.start()

    def _open(self) -> None:
        """The connector, the file, and the tree as it is (after subscribing: none missed)."""
        if self._want_connector:
            try:
                self._conn = Connector.open(self.receive_buffer)
                self._connector_state = "ok"
            except ConnectorUnavailable as error:
                self._connector_state = str(error)
        if self._conn is None and self._want_probe:
            self._probe_state = (
                "not used: kernel-stamped reaps are put in order among the connector's events,"
                " and there is no connector"
            )
        elif self._conn is not None and self._want_probe:
            if _in_a_pid_namespace_of_its_own(self.root):
                self._probe_state = (
                    "not used: the tree has a PID namespace of its own, whose wait calls"
                    " return its own PIDs"
                )
            else:
                try:
                    self._reaps = ReapProbe.open()
                    self._probe_state = "ok"
                except ReapProbeUnavailable as error:
                    self._probe_state = str(error)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._append(contract.EVENT_HEADER)
        self._tree.root_command = procfs.command(self.root) or self._tree.root_command
        woken_by = [self._stop_fd, self._probe_fd]
        if self._conn is not None and self._reaps is None:  # else read every batch interval
            woken_by.append(self._conn.fileno())
        for fd in woken_by:
            self._epoll.register(fd, select.EPOLLIN)
        self._scanning = self._conn is None or (self._reaps is None and not self._pidfd_ok)
        self._walk(contract.PRE_EXISTING, time.monotonic_ns())

    def stop(self, until: float | None = None) -> EventSummary:
        """End the record: the last events are read, every child's row written. Idempotent.

        The summary's figures are of the tree as it stood at ``until`` (unix time; the
        stop by default): a harness stops the record after it has stopped the server and
        reaped its orphans, and judges the server until it asked it to stop. (Not at the
        root's exit when it dies: a reap is seen late by the poller's latency, so a child
        the root reaped just before it died would pass for one it left.)
        """
        if self._summary is not None:
            return self._summary
        self._stopping.set()
        self._stop_asked = True
        if self._thread is not None:
            os.eventfd_write(self._stop_fd, 1)
            self._thread.join()
        if self._prober is not None:
            self._prober.join()
        for fd in (self._stop_fd, self._probe_fd):
            os.close(fd)
        self._epoll.close()
        self._summary = self._summarise(until)
        return self._summary

    @property
    def live(self) -> int:
        """Children of the tree alive now (exact where the sources are)."""
        return self._tree.live

    @property
    def zombies(self) -> int:
        """Children of the tree exited and not yet reaped, now."""
        return self._tree.zombies

    def counts(self) -> TreeCounts:
        """The tree's counts now: live and zombies at every depth, the peak so far, the
        forks, exits and reaps seen, and when the latest happened (monotonic ns)."""
        return self._tree.counts()

    # The thread ------------------------------------------------------------------

    def _run(self) -> None:
        # The loop wakes up for every fork of the tree, and more: each look up saved counts.
        poll, handle, clock = self._epoll.poll, self._handle, time.monotonic_ns
        try:
            if self._reaps is not None:
                _yield_at_wake_up()
            while not self._stop_asked:
                handle(poll(self._timeout(), MAX_READY), clock())
            self._finish()
        except Exception as exc:  # the owner must never see this thread's failures
            log.debug("event recorder failed", exc_info=True)
            self._fail(f"the event recorder failed: {type(exc).__name__}: {exc}")
            self._close_all()
        finally:
            self._cpu_seconds = time.thread_time()

    def _timeout(self) -> float:
        """Until the next scan where a source is missing, the next batch where the kernel
        stamps the reaps (-1: until woken)."""
        timeout = BATCH_INTERVAL_S if self._reaps is not None else -1.0
        if self._scanning:
            scan = max(0.0, (self._next_scan - time.monotonic_ns()) / 1e9)
            timeout = scan if timeout < 0 else min(timeout, scan)
        return timeout

    def _handle(self, ready: list[tuple[int, int]], now: int) -> None:
        """One turn: the connector first (forks and exits before reaps), then pidfds."""
        if self._conn is not None:
            self._drain(self._conn, now)
        by_fd = self._by_fd
        for fd, mask in ready:
            child = by_fd.get(fd)
            if child is not None:
                if mask & select.EPOLLIN and child.exit_seen_ns is None:
                    self._exit_seen(child, now)
                if mask & _HANGUP:
                    self._hung_up(child, now)
            elif fd == self._probe_fd:
                for _ in range(os.eventfd_read(fd)):
                    self._latencies.append(now - self._probes.popleft())
        if self._scanning and now >= self._next_scan:
            self._scan(now)
            self._next_scan = now + int(self.scan_interval * 1e9)
        if self._tree.done:
            self._sort_done(now)
        if now >= self._next_flush:
            self._flush(now)

    def _drain(self, conn: Connector, now: int) -> None:
        overflows = conn.overflows
        self._read(conn)
        while self._gone:
            # Found gone while a batch was handled: what they did before that look (their
            # exits, the forks of their own children) was queued meanwhile. Read it while
            # they are still members, then settle them.
            gone = self._take_gone()
            self._read(conn)
            self._settle_gone(gone)
        if conn.overflows > overflows:  # events were dropped: look for what they said
            self._walk(contract.DISCOVERED, now)

    def _read(self, conn: Connector) -> None:
        """Apply what the connector has queued, up to DRAIN_BATCHES batches."""
        if self._reaps is not None:
            self._read_in_order(conn, self._reaps)
            return
        for batch in _batches(conn):
            self._apply(batch, time.monotonic_ns())  # seen: once read

    def _read_in_order(self, conn: Connector, probe: ReapProbe) -> None:
        """Both sources, applied in the order of their stamps: the reaps are read first,
        so every reap read has its child's fork queued already."""
        now = time.monotonic_ns()
        pending = self._pending
        pending += [
            (REAP, at, pid, reaper, 0, -1 if status is None else status)
            for at, pid, reaper, status in probe.read()
        ]
        commands = self._commands
        for at, pid, line in probe.commands:
            commands[pid] = (at, line)
        probe.commands.clear()
        for batch in _batches(conn):
            pending += batch
        pending.sort(key=_stamp)
        cut = (
            len(pending)
            if self._final
            else bisect.bisect_right(pending, now - ORDER_MARGIN_NS, key=_stamp)
        )
        self._pending = pending[cut:]
        self._apply(pending[:cut], now)
        self._settle_released(now if self._final else now - ORDER_MARGIN_NS)
        self._settle_early(now)
        if len(commands) > COMMANDS_KEPT:  # the machine's: forget those no exec of the tree took
            self._commands = {pid: c for pid, c in commands.items() if c[0] > now - 10**9}
        lost = probe.lost
        if lost > self._reaps_lost:  # reaps dropped: scans find the children they were
            self._reaps_lost = lost
            self._scanning = True
        if probe.namespaced and not self._namespaced_reaps:
            tree = self._tree
            if any(tree.is_member(reaper) for reaper in probe.namespaced):
                # a member reaped inside a PID namespace made since the start: those reaps
                # are left out, and scans find the children they were
                self._namespaced_reaps = self._scanning = True
            probe.namespaced.clear()

    def _apply(self, batch: list[Event], now: int) -> None:
        """The tree's events among the machine's (most are not the tree's: each is
        looked at with a dict lookup or two, and no more)."""
        tree = self._tree
        active, held, root = tree.active, self._held, self.root
        for what, at, pid, tgid, parent, status in batch:
            if what == FORK:
                if pid != tgid:
                    continue  # a new thread, not a child
                if pid in active:
                    self._pid_came_back(active[pid], at)
                if (
                    (parent in active or parent == root)
                    and pid not in active
                    and tree.is_member(parent)
                ):
                    child = tree.add(pid, parent, contract.FORKED, now, forked_ns=at)
                    self._watch(child, at)
            elif what == EXIT:
                if tgid in active or tgid == root or (pid == tgid and pid in held):
                    self._exited(at, pid, tgid, parent, status)
            elif what == REAP:
                if pid in active:
                    self._kernel_reaped(active[pid], at, tgid, status)
            elif what == EXEC and (tgid in active or tgid == root) and tree.is_member(tgid):
                self._exec(tgid)

    def _settle_released(self, applied_until: int) -> None:
        """The zombies found gone at a parent's exit, once every reap stamped before the
        look is applied: those no reap named were released with their parent."""
        kept = []
        for child, parent_exit, looked in self._released:
            if looked > applied_until:
                kept.append((child, parent_exit, looked))
            elif self._tree.active.get(child.pid) is child:
                self._tree.reaped(child, parent_exit, contract.REAP_WITH_PARENT)
        self._released = kept

    def _settle_early(self, now: int) -> None:
        """Kernel-stamped reaps whose exit never came in time (or at the end): reaped."""
        for pid, (at, reaper, status) in list(self._early.items()):
            if self._final or at + EXIT_GRACE_NS <= now:
                del self._early[pid]
                child = self._tree.active.get(pid)
                if child is not None:  # (not settled since by a scan)
                    self._reap(child, at, reaper, status)

    def _kernel_reaped(self, child: Child, at: int, reaper: int, status: int) -> None:
        """The kernel stamped ``child``'s reap, by ``reaper`` (its wait call returned, or
        the kernel reaped it for a parent that does not wait). A PID is not handed on
        before its reap, so the child of that PID now is the one reaped; one whose exit
        is not told yet is reaped when it is (see ``_early``)."""
        if child.exited_ns is None and child.exit_source == "":
            self._early[child.pid] = (at, reaper, status)
        else:
            self._reap(child, at, reaper, status)

    def _reap(self, child: Child, at: int, reaper: int, status: int) -> None:
        if status >= 0 and child.exit_status is None:
            child.exit_status = status
        self._tree.reaped(child, at, contract.REAP_FROM_KERNEL)
        child.reaped_by = reaper

    def _pid_came_back(self, old: Child, forked_ns: int) -> None:
        """A fork event names a PID the tree still holds: the same child seen twice
        (found at the start, forked just before), or the old one is gone."""
        early = self._early.pop(old.pid, None)
        if early is not None:  # reaped, its exit never told
            self._reap(old, *early)
            return
        if (
            old.origin == contract.PRE_EXISTING
            and old.forked_ns is None
            and _started_by(old.start_ticks, forked_ns)
        ):
            old.origin, old.forked_ns = contract.FORKED, forked_ns
            return
        self._unwatch(old)
        self._tree.reaped(old, forked_ns, contract.REAP_PID_REUSED)

    def _watch(self, child: Child, forked_ns: int | None) -> None:
        """Open ``child``'s pidfd, and keep it only if it names that very process (one
        that started no later than its fork event); a child gone already is settled
        after the exits queued with it. Nothing to do where the kernel stamps reaps."""
        if self._reaps is not None:
            return
        fd = None
        if self._pidfd_ok and len(self._by_fd) >= self._pidfd_budget:
            self._warn_once(
                "some children were watched by scans of /proc: no descriptor to spare for"
                f" their pidfds ({self._pidfd_budget} held at most)"
            )
            self._scanning = True
        elif self._pidfd_ok:
            try:
                fd = pidfds.open_pidfd(child.pid)
            except OSError as error:
                self._warn_once(f"some children were watched by scans of /proc: {error.strerror}")
                self._scanning = True
        if fd is not None and forked_ns is not None:
            now = time.monotonic_ns()
            if now - forked_ns < self._lag(now):
                self._register(child, fd)  # no PID can have come round since its fork
                return
        st = procfs.stat(child.pid)
        if st is None or (forked_ns is not None and not _started_by(st.start_ticks, forked_ns)):
            if fd is not None:
                os.close(fd)
            self._unwatched += 1
            self._gone.append((child, time.monotonic_ns()))  # reaped by the time it looked
            return
        child.start_ticks = st.start_ticks
        if fd is not None:
            self._register(child, fd)

    def _register(self, child: Child, fd: int) -> None:
        """Watch its pidfd: for the hang-up (the reap) alone where the connector tells the
        exit (one wake-up a child fewer), for the exit too where it does not."""
        child.pidfd = fd
        self._by_fd[fd] = child
        self._epoll.register(fd, 0 if self._conn is not None else select.EPOLLIN)

    def _lag(self, now: int) -> int:
        """How long after a fork its PID surely still names the child (ns): the time the
        PIDs free now would take to run out at MAX_FORKS_PER_S (a PID comes round again
        only after the allocator has passed every free one)."""
        if now >= self._safe_lag[0]:
            free = procfs.free_pids() or 0
            self._safe_lag = (now + SAFE_LAG_REFRESH_NS, free * 1_000_000_000 // MAX_FORKS_PER_S)
        return self._safe_lag[1]

    def _exited(self, at: int, pid: int, tgid: int, parent: int, status: int) -> None:
        """Task ``pid`` of process ``tgid`` exited at ``at``; ``parent``: its parent then."""
        tree = self._tree
        child = tree.active.get(tgid)
        if child is None and pid == tgid and pid in self._held:  # late
            child, _ = self._held.pop(pid)
            child.exited_ns, child.exit_source = at, contract.EXIT_FROM_CONNECTOR
            child.exit_status = status
            self._ready.append(child)
            return
        if child is None:  # the root
            if pid == tgid and tree.root_exited_ns is None:
                tree.root_exited_ns = at
                self._rehome(self.root, at)
            return
        if pid == tgid:
            early = self._early.pop(pid, None)
            exited = at if early is None else min(at, early[0])  # not after its reap
            tree.exited(child, exited, contract.EXIT_FROM_CONNECTOR, status)
            if parent and parent != child.holder:  # its holder died first: handed on then
                holder_exit = tree.root_exited_ns if child.up is None else child.up.exited_ns
                tree.adopted(child, parent, exited if holder_exit is None else holder_exit)
            self._rehome(child.pid, exited)
            if early is not None:
                self._reap(child, *early)
        elif child.exit_source == contract.EXIT_FROM_CONNECTOR and child.exited_ns is not None:
            # a thread outliving its leader: the process is a zombie when its last thread exits
            child.exited_ns = max(child.exited_ns, at)

    def _rehome(self, pid: int, at: int) -> None:
        """``pid`` exited at ``at``: its children now belong to a subreaper or init (the
        kernel hands them on as it exits); find which."""
        tree = self._tree
        for orphan in tree.orphans_of(pid):
            st = procfs.stat(orphan.pid)
            if st is None and self._reaps is not None and orphan.exit_source != "":
                self._released.append((orphan, at, time.monotonic_ns()))
            if st is None or st.ppid == pid:
                continue
            if orphan.pidfd is not None:
                same = not pidfds.reaped(orphan.pidfd)  # still there: the PID is still its
            elif orphan.start_ticks is None:
                # where the kernel stamps the reaps, a PID of the tree is handed on only
                # after a reap the record has seen: the PID is still the orphan's
                same = self._reaps is not None
            else:
                same = st.start_ticks == orphan.start_ticks
            if same:
                tree.adopted(orphan, st.ppid, at)

    def _exec(self, tgid: int) -> None:
        tree = self._tree
        seen = self._commands.pop(tgid, None)
        command = seen[1] if seen else procfs.command(tgid)
        if tgid == self.root:
            tree.root_command = command or tree.root_command
            return
        child = tree.active[tgid]
        child.command = command or child.command
        if child.exit_source == contract.EXIT_FROM_CONNECTOR:
            tree.revived(child)  # a thread's exec replaced the leader, whose "exit" we saw

    def _exit_seen(self, child: Child, now: int) -> None:
        """Its pidfd turned readable: it exited. The connector's timestamp, where there
        is one, is better; without the connector this is the exit time."""
        child.exit_seen_ns = now
        assert child.pidfd is not None
        self._epoll.modify(child.pidfd, 0)  # from now on, only the hang-up
        if self._conn is None and child.exit_source == "":
            status = self._zombie_status(child)
            self._tree.exited(child, now, contract.EXIT_FROM_PIDFD, status)

    def _hung_up(self, child: Child, now: int) -> None:
        tree = self._tree
        if child.exit_seen_ns is None and self._conn is None:
            child.exit_seen_ns = now  # readable and hung up in one look
        self._unwatch(child)
        tree.reaped(child, now, contract.REAP_FROM_PIDFD)

    def _zombie_status(self, child: Child, st: procfs.Stat | None = None) -> int | None:
        """A zombie's exit status from /proc, where the kernel shows it to this user."""
        st = st or procfs.stat(child.pid)
        if st is None or not st.zombie or st.start_ticks != child.start_ticks:
            return None
        euid = os.geteuid()
        return st.exit_status if euid == 0 or procfs.owner(child.pid) == euid else None

    def _unwatch(self, child: Child) -> None:
        if child.pidfd is not None:
            del self._by_fd[child.pidfd]
            os.close(child.pidfd)  # closing takes it out of the epoll set
            child.pidfd = None

    # Scans: what a missing source does not say -----------------------------------

    def _scan(self, now: int) -> None:
        tree = self._tree
        if tree.root_exited_ns is None and self._conn is None:
            root = procfs.stat(self.root)
            if root is None or root.zombie:
                tree.root_exited_ns = now
        if self._conn is None:
            self._walk(contract.DISCOVERED, now)
        holders: dict[int, list[Child]] = {}
        for child in tree.active.values():
            if child.pidfd is None:
                holders.setdefault(child.holder, []).append(child)
        for holder, children in holders.items():
            present = procfs.children(holder)
            for child in children:
                self._check(child, child.pid in present, now)

    def _check(self, child: Child, with_holder: bool, now: int) -> None:
        """A child without a pidfd: has it exited, been reaped, or moved?"""
        tree = self._tree
        living = child.exited_ns is None and child.exit_source != contract.EXIT_BEFORE_SEEN
        if with_holder and not (living and self._conn is None):
            return  # a zombie still there stays a zombie; a live child's exit comes as an event
        st = procfs.stat(child.pid)
        if st is None or st.start_ticks != child.start_ticks:
            tree.reaped(child, now, contract.REAP_FROM_SCAN)
            return
        if st.ppid != child.holder:
            tree.adopted(child, st.ppid, now)
        if living and st.zombie and self._conn is None:
            tree.exited(child, now, contract.EXIT_FROM_SCAN, self._zombie_status(child))

    def _walk(self, origin: str, now: int) -> None:
        """Add every descendant of the root not known yet (``origin`` says how it was found)."""
        tree = self._tree
        parents = [self.root] if tree.root_exited_ns is None else []
        parents += [c.pid for c in tree.active.values() if c.exit_source == ""]
        while parents:
            parent = parents.pop()
            for pid in procfs.children(parent) - tree.active.keys():
                st = procfs.stat(pid)
                if st is None or st.ppid != parent:
                    continue
                child = tree.add(pid, parent, origin, now, command=procfs.command(pid))
                child.start_ticks = st.start_ticks
                self._watch(child, None)
                if st.zombie:
                    tree.found_zombie(child, self._zombie_status(child, st))
                else:
                    parents.append(pid)
        if self._conn is None:  # else the next drain settles them, after their exits
            self._settle_gone(self._take_gone())

    def _take_gone(self) -> list[tuple[Child, int]]:
        gone, self._gone = self._gone, []
        return gone

    def _settle_gone(self, gone: list[tuple[Child, int]]) -> None:
        """Children found gone are done, unless the PID's return settled them already."""
        tree = self._tree
        for child, at in gone:
            if tree.active.get(child.pid) is child:
                tree.reaped(child, at, contract.REAP_GONE_WHEN_LOOKED)

    # Rows ------------------------------------------------------------------------

    def _sort_done(self, now: int, final: bool = False) -> None:
        """The children reaped this turn: ready for their rows, or, where the connector
        has not told the exit yet, held for it (EXIT_GRACE_NS) unless this is the end."""
        for child in self._tree.take_done():
            if self._conn is not None and not final and child.exit_source == "":
                self._held[child.pid] = (child, now + EXIT_GRACE_NS)
            else:
                self._ready.append(child)

    def _flush(self, now: int, final: bool = False) -> None:
        """Write the rows of the children ready, every FLUSH_INTERVAL_NS (a turn of the
        loop under load sees a child or two: rows are made and written a batch at a
        time), with those held whose exit never came in time."""
        if not final and (now < self._next_flush or not (self._ready or self._held)):
            return
        self._next_flush = now + FLUSH_INTERVAL_NS
        done, self._ready = self._ready, []
        for pid, (child, deadline) in list(self._held.items()):
            if final or deadline <= now:
                del self._held[pid]
                done.append(child)
        if done:
            for child in done:
                if child.exit_source == "" and child.exit_seen_ns is not None:
                    # its exit event never came: the pidfd's readable moment stands in
                    child.exited_ns, child.exit_source = (
                        child.exit_seen_ns,
                        contract.EXIT_FROM_PIDFD,
                    )
            offset = clocks.unix_offset_ns()
            self._append("".join([child.csv_line(offset) for child in done]))

    def _finish(self) -> None:
        """The last events, then every child still in the tree as it is now."""
        self._final = True
        self._handle(self._epoll.poll(0, 1024), time.monotonic_ns())
        self._settle_gone(self._take_gone())
        tree = self._tree
        for child in tree:  # those still in the tree, as they are at the end
            if child.exit_source == "":  # alive: its command now (a worker renames itself)
                child.command = procfs.command(child.pid) or child.command
            tree.done.append(child)
        now = time.monotonic_ns()
        self._sort_done(now, final=True)
        self._flush(now, final=True)
        self._close_all()

    def _append(self, text: str) -> None:
        """Whole rows to the file; on a write error they wait for the next try (stop)."""
        if text:
            self._unwritten.append(text)
        if self._fd is None or not self._unwritten:
            return
        data = "".join(self._unwritten).encode("utf-8")
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as error:
            self._fail(f"{error.strerror} writing {self.path.name}")
            return
        self._unwritten.clear()

    def _close_all(self) -> None:
        for child in list(self._by_fd.values()):
            self._unwatch(child)
        if self._conn is not None:
            self._conn.close()
        if self._reaps is not None:
            self._reaps_lost = self._reaps.lost
            self._reaps.close()
        if self._fd is not None:
            if self._unwritten:
                self._append("")
            os.close(self._fd)
            self._fd = None

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
            if self.on_error is not None:
                try:
                    self.on_error(message)
                except Exception:
                    log.exception("event recorder on_error failed")

    def _warn_once(self, message: str) -> None:
        if message not in self._warnings:
            self._warnings.append(message)

    def _probe(self) -> None:
        """Wake the loop at random times: how late it answers is how late it sees a reap."""
        rng = random.Random()
        while not self._stopping.wait(rng.expovariate(1 / PROBE_INTERVAL_S)):
            self._probes.append(time.monotonic_ns())
            os.eventfd_write(self._probe_fd, 1)

    # The summary -----------------------------------------------------------------

    def _summarise(self, until: float | None) -> EventSummary:
        conn = self._conn
        pidfd_ok = self._pidfd_state == pidfds.OK
        probe = self._reaps
        sources = {
            "forks": "connector" if conn else "scan",
            "exits": "connector" if conn else "pidfd" if pidfd_ok else "scan",
            "reaps": "kernel" if probe else "pidfd" if pidfd_ok else "scan",
        }
        every = f"every {self.scan_interval * 1000:g} ms"
        sampled: dict[str, str] = {}
        if conn is None:
            sampled["forks"] = (
                f"no process-events connector ({self._connector_state}): children were found"
                f" by scans of /proc {every}; a child that lived less than that was missed,"
                " and no fork time is known"
            )
        elif conn.lost or conn.overflows:
            sampled["forks"] = (
                f"at least {conn.lost} connector events lost ({conn.overflows} overflows of the"
                " receive buffer): children missed were looked for by a scan of /proc"
            )
        if conn is None and not pidfd_ok:
            sampled["exits"] = f"exits were seen by scans of /proc {every}"
        if probe is not None and self._reaps_lost:
            sampled["reaps"] = (
                f"{self._reaps_lost} reaps stamped by the kernel were lost (its ring buffer was"
                f" full): scans of /proc {every} found the children they were"
            )
        elif probe is not None and self._namespaced_reaps:
            sampled["reaps"] = (
                "some reaps were in a PID namespace the tree made during the record, told in"
                f" its own PIDs: scans of /proc {every} found the children they were"
            )
        elif probe is None and not pidfd_ok:
            sampled["reaps"] = (
                f"no reap notification from pidfds ({self._pidfd_state}): reaps were seen by"
                f" scans of /proc {every}"
            )
        warnings = list(self._warnings)
        if self._unwatched:
            warnings.append(
                f"{self._unwatched} children were gone before the recorder could watch them:"
                " their reap times are only bounds"
            )
        latencies = sorted(ns / 1e6 for ns in self._latencies)
        rows = self.rows = self._rows_written(warnings)
        ended = time.time()
        return EventSummary(
            root_pid=self.root,
            recorder_pid=os.getpid(),
            started=self._started,
            ended=ended,
            until=until,
            sources=sources,
            sampled=sampled,
            connector=self._connector_state,
            pidfd=self._pidfd_state,
            reap_probe=self._probe_state,
            reaps_lost=self._reaps_lost,
            receive_buffer_bytes=conn.buffer_bytes if conn else None,
            overflows=conn.overflows if conn else 0,
            events_lost=conn.lost if conn else None,
            events_read=conn.read if conn else 0,
            children=len(rows),
            forked=sum(row.origin == contract.FORKED for row in rows),
            pre_existing=sum(row.origin == contract.PRE_EXISTING for row in rows),
            discovered=sum(row.origin == contract.DISCOVERED for row in rows),
            root_forks=sum(row.parent == self.root and row.forked_at is not None for row in rows),
            root_reaps=sum(row.reaped_by == self.root for row in rows),
            unwatched=self._unwatched,
            scan_interval_s=self.scan_interval if self._scanning_used() else None,
            reap_latency_ms=None
            if probe
            else {
                "probes": len(latencies),
                "p50": percentile(latencies, 50),
                "p99": percentile(latencies, 99),
                "max": latencies[-1] if latencies else None,
            },
            cpu_seconds=self._cpu_seconds,
            figures=summary_figures(rows, ended if until is None else until, self.root)
            if rows
            else {},
            errors=[self.error] if self.error else [],
            warnings=warnings,
        )

    def _rows_written(self, warnings: list[str]) -> list[ChildRecord]:
        """events.csv read back: the summary's figures are those of the file, whatever a
        reader of it will find (none where it could not be read, said in ``warnings``)."""
        if self._thread is None:
            return []
        try:
            rows, notes = events.read(self.path)
        except (OSError, ValueError) as error:
            warnings.append(f"{self.path.name} could not be read back: {error}")
            return []
        warnings += notes
        return rows

    def _scanning_used(self) -> bool:
        return (
            self._conn is None
            or (self._reaps is None and self._pidfd_state != pidfds.OK)
            or self._reaps_lost > 0
            or self._namespaced_reaps
        )


def _in_a_pid_namespace_of_its_own(root: int) -> bool:
    """Whether ``root`` or a process under it now lives in another PID namespace than
    this process (a container's init, ``unshare --pid``)."""
    try:
        ours = os.readlink("/proc/self/ns/pid")
    except OSError:
        return False
    pending = [root]
    while pending:
        pid = pending.pop()
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != ours:
                return True
        except OSError:
            continue  # gone, or not ours to look at
        pending += procfs.children(pid)
    return False


def _batches(conn: Connector) -> Iterator[list[Event]]:
    """What the connector has queued, a batch at a time, DRAIN_BATCHES at most."""
    for _ in range(DRAIN_BATCHES):
        batch = conn.read_batch()
        if batch:
            yield batch
        if len(batch) < BATCH:
            return


def _yield_at_wake_up() -> None:
    """Put this thread under SCHED_BATCH: its wake-ups do not preempt the task running.

    Where the kernel stamps every event, when the reader comes by moves no time, so it
    need not cut in: woken every BATCH_INTERVAL_S, it waits for the CPU's next turn
    instead of taking it from the watched server's parent (a fork-per-connection
    server's one serial step). Its share of the CPU is unchanged (the weight is a nice-0
    task's). A pidfd reader must keep SCHED_OTHER: its wake-up is the reap's time.
    """
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_BATCH, os.sched_param(0))
    except OSError as error:  # refused by a seccomp profile, say: the default policy stands
        log.debug("SCHED_BATCH refused: %s", error)


def _started_by(start_ticks: int | None, forked_ns: int) -> bool:
    """Whether a process that started at ``start_ticks`` (boot-time clock ticks) is the
    child of a fork event stamped ``forked_ns`` (monotonic): it started no later than
    the event, and not long before it. A newer process that took the PID started later."""
    if start_ticks is None:
        return False
    expected = (forked_ns + clocks.boot_offset_ns()) // procfs.TICK_NS
    return expected - SAME_START_TICKS <= start_ticks <= expected
