"""One row of the time series: how many children a process has, how many are zombies,
and what the process itself costs, measured so that the measuring stays cheap.

The cost of a sample follows the number of LIVE descendants, not the number of
zombies: a PID already known as a zombie child is not read again (see
:class:`~diagnostics.proctable.PidClock` for when it is), and the kernel's own
children lists replace a scan of the whole process table.

With ``count_listener_holders`` (the time series of the harness and of ``watch``), where
the target (or the first process below it that listens: a server under a shell or an
init) has listening sockets when the sampler is made, each sample also counts the live
processes of the tree that hold one (``listener_holders``): one link read per live
process (diagnostics.inherited.ListenerHolders), so the tutorial's second descriptor
rule, the child closes the listening socket, is seen kept or broken over time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import psutil

from diagnostics.contract import Sample
from diagnostics.errors import AccessDenied, NoSuchProcess, ZombieProcess, psutil_call
from diagnostics.inherited import ListenerHolders
from diagnostics.proctable import (
    Backend,
    PidClock,
    ProcStat,
    ProcTable,
    allocated_between,
    list_dir,
    open_table,
)

T = TypeVar("T")


class Sampler:
    """Samples one target process; create it once and call :meth:`sample` repeatedly.

    Raises :class:`NoSuchProcess` (or :class:`ZombieProcess`) from the constructor and
    from :meth:`sample` when the target is gone, and :class:`AccessDenied` when its
    stat cannot be read. Not thread-safe: one caller at a time.
    """

    def __init__(
        self, pid: int, *, backend: Backend = "auto", count_listener_holders: bool = False
    ) -> None:
        self.pid = pid
        self._backend: Backend = backend
        self._started: float | None = None
        me = self._check_target(open_table(backend))
        self._started = me.started
        self._cpu_mark = (time.monotonic(), me.cpu_seconds)  # the CPU percent's baseline
        self._process: psutil.Process | None = None  # only where the table has no stat line
        if me.cpu_seconds is None:
            self._process = psutil_call(pid, lambda: psutil.Process(pid))
            psutil_call(pid, self._process.cpu_percent)  # psutil's own baseline
        self._clock = PidClock()
        self._t0 = time.monotonic()
        self._zombies: dict[int, ProcStat] = {}  # every zombie in the tree, read once
        self._direct_zombies: set[int] = set()
        self._holders: dict[int, int] = {}
        self._listeners = ListenerHolders.in_tree(pid) if count_listener_holders else None

    def sample(self) -> Sample:
        """Take one sample of the target and its descendants."""
        cpu0 = time.thread_time()
        wall = time.time()
        window = self._clock.advance()
        table = open_table(self._backend)
        me = self._check_target(table)
        direct_zombies, live = self._classify(table, self.pid, table.children(self.pid), window)
        holders = {self.pid: len(direct_zombies)} if direct_zombies else {}
        deeper_zombies, deeper_live = self._walk(table, live, window, holders)
        self._forget_reaped(direct_zombies, deeper_zombies)
        self._direct_zombies = direct_zombies
        self._holders = holders
        fds, rss, cpu, threads = self._figures(me)
        listeners = self._listeners
        listener_holders = None if listeners is None else listeners.count([*live, *deeper_live])
        return Sample(
            time=wall,
            elapsed=time.monotonic() - self._t0,
            children=len(direct_zombies) + len(live),
            alive=len(live),
            zombies=len(direct_zombies),
            descendant_zombies=len(deeper_zombies),
            fds=fds,
            rss_bytes=rss,
            cpu_percent=cpu,
            threads=threads,
            sample_cost_ms=(time.thread_time() - cpu0) * 1000.0,
            listener_holders=listener_holders,
        )

    def zombie_children(self) -> list[ProcStat]:
        """The target's zombie children as of the last sample (for ages and exit codes)."""
        return [self._zombies[pid] for pid in self._direct_zombies]

    def holders(self) -> dict[int, int]:
        """Zombies held by each process of the tree that holds any (the target included),
        as of the last sample: who must reap them."""
        return dict(self._holders)

    def _check_target(self, table: ProcTable) -> ProcStat:
        me = table.stat(self.pid)
        if me.zombie:
            raise ZombieProcess(self.pid)
        if self._started is not None and me.started != self._started:
            raise NoSuchProcess(self.pid, f"PID {self.pid} now names another process")
        return me

    def _classify(
        self,
        table: ProcTable,
        parent: int,
        pids: set[int],
        window: tuple[int, int] | None,
    ) -> tuple[set[int], list[int]]:
        """Split the children ``pids`` of ``parent`` into (zombies, live).

        Known zombies are taken from the cache unless their PID may have been
        allocated again since the last sample. A child that is reaped between the
        listing and the read, or whose PID by then names a process with another
        parent, is counted nowhere.
        """
        zombies = pids & self._zombies.keys()
        if window is not None and zombies:
            zombies -= {pid for pid in zombies if allocated_between(pid, window)}
        live: list[int] = []
        for pid in pids - zombies:
            try:
                st = table.stat(pid)
            except NoSuchProcess:
                continue
            if st.ppid != parent or st.state == "X":
                continue
            if st.zombie:
                zombies.add(pid)
                self._zombies[pid] = st
            else:
                self._zombies.pop(pid, None)
                live.append(pid)
        return zombies, live

    def _walk(
        self,
        table: ProcTable,
        live: Iterable[int],
        window: tuple[int, int] | None,
        holders: dict[int, int],
    ) -> tuple[set[int], list[int]]:
        """(zombies, live processes) among the descendants of the ``live`` children, depth
        first; each parent holding zombies is counted into ``holders``."""
        found: set[int] = set()
        deeper_live: list[int] = []
        stack = list(live)
        visited = {self.pid, *stack}
        while stack:
            parent = stack.pop()
            try:
                kids = table.children(parent) - visited
            except NoSuchProcess:
                continue  # exited since it was seen alive; counted next sample
            visited |= kids
            zombies, grand_live = self._classify(table, parent, kids, window)
            if zombies:
                holders[parent] = len(zombies)
            found |= zombies
            deeper_live.extend(grand_live)
            stack.extend(grand_live)
        return found, deeper_live

    def _forget_reaped(self, direct: set[int], deeper: set[int]) -> None:
        """Drop cached zombies that were not seen this sample (reaped or moved away).

        Every zombie counted is in the cache, so equal sizes mean nothing to drop;
        that keeps the steady state free of a pass over all zombies.
        """
        if len(self._zombies) != len(direct) + len(deeper):
            for pid in self._zombies.keys() - direct - deeper:
                del self._zombies[pid]

    def _figures(self, me: ProcStat) -> tuple[int | None, int | None, float | None, int | None]:
        """The target's own descriptors, RSS, CPU percent and threads.

        Taken from the stat line this sample has already read, plus a listing of
        /proc/PID/fd: the same kernel counters psutil would read, for one file
        less per figure. psutil where the table has no such line (no /proc).
        """
        if me.cpu_seconds is None:
            return self._psutil_figures()
        now = time.monotonic()
        then, cpu_then = self._cpu_mark
        self._cpu_mark = (now, me.cpu_seconds)
        cpu = None
        if cpu_then is not None and now > then:
            cpu = (me.cpu_seconds - cpu_then) / (now - then) * 100.0
        return _count_fds(self.pid), me.rss_bytes, cpu, me.threads

    def _psutil_figures(self) -> tuple[int | None, int | None, float | None, int | None]:
        proc = self._process
        assert proc is not None, "made in __init__ for tables without a stat line"
        with proc.oneshot():
            return (
                _psutil_figure(self.pid, proc.num_fds),
                _psutil_figure(self.pid, lambda: proc.memory_info().rss),
                _psutil_figure(self.pid, lambda: proc.cpu_percent(None)),
                _psutil_figure(self.pid, proc.num_threads),
            )


def _count_fds(pid: int) -> int | None:
    """Open descriptors of ``pid``; None when this user may not look."""
    try:
        return len(list_dir(f"/proc/{pid}/fd", pid))
    except AccessDenied:
        return None


def _psutil_figure(pid: int, call: Callable[[], T]) -> T | None:
    """A figure of the target, or None when this user may not read it."""
    try:
        return psutil_call(pid, call)
    except AccessDenied:
        return None
