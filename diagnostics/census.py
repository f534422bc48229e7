"""Who holds zombies right now, on the whole host or below one process: cheap enough to
run at every Prometheus scrape.

A census is a count of zombies per parent (the process that must reap them). Two ways
to take it, neither reading a process twice:

- :class:`TreeCensus`, below one process: the :class:`~diagnostics.sampler.Sampler`'s
  walk of the kernel's children lists (``/proc/PID/task/TID/children``), which reads
  the stat of the tree's processes only and never a known zombie twice. It counts a
  child in state Z as the sampler does.
- :class:`HostCensus`, every process on the machine. Finding zombies anywhere means
  knowing the state of every PID, and reading ``/proc/PID/stat`` (the kernel formats
  some fifty fields) costs about 10 us a process: 80 ms a scrape with 8,000 of them.
  Instead the census holds a pidfd for each process it has seen (``pidfd_open``, one
  file descriptor each), all in one epoll set: a pidfd turns readable when its process
  has exited, so each scrape lists ``/proc`` for new PIDs, asks epoll which processes
  exited since, and reads the stat of those alone (for the parent). A zombie's pidfd
  is kept to tell when it is reaped (its PID may then name a new process). Where a
  pidfd cannot be had (a kernel before 5.3, no descriptors left), a process is looked
  at every scrape the cheaper way: ``readlink(/proc/PID/exe)`` fails for a task
  without a memory map (a zombie, a kernel thread), and only those, or the processes
  whose link we may not read (other users', unless root), have their stat read.

A zombie is counted under its parent as the stat line names it; when that parent exits,
its zombies are handed to a subreaper or init, and they are read again.

A task that shows as a zombie while other threads of it still run (its main thread
called ``pthread_exit``; ``ps`` shows ``Zl``) is alive and cannot be reaped yet. Its
pidfd does not turn readable until the last thread ends, so the host census does not
count it, as ``doctor`` does not.
"""

from __future__ import annotations

import errno
import os
import resource
import select
import signal
from collections import Counter
from dataclasses import dataclass

from diagnostics.errors import DiagnosticsError
from diagnostics.proctable import PidClock, ProcStat, allocated_between, read_stat
from diagnostics.sampler import Sampler

KTHREADD = 2
"""The parent of every kernel thread (in the initial PID namespace)."""


@dataclass(frozen=True, slots=True)
class Census:
    """Zombies per parent at one moment."""

    holders: dict[int, int]
    """Parent PID -> zombie children it holds (parents holding none are left out)."""

    @property
    def zombies(self) -> int:
        return sum(self.holders.values())


class TreeCensus:
    """Zombies per parent below (and including) one process; one per target, reused.

    Raises NoSuchProcess (ZombieProcess) from the constructor and from :meth:`take`
    when the target is gone, or when its PID now names another process.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.method = (
            f"tree of PID {pid}: /proc/PID/task/TID/children of each live process,"
            " /proc/PID/stat of each child not known as a zombie"
        )
        self._sampler = Sampler(pid)

    def take(self) -> Census:
        self._sampler.sample()
        return Census(self._sampler.holders())

    def close(self) -> None:
        """Nothing to release (the same interface as :class:`HostCensus`)."""


@dataclass(slots=True)
class _Zombie:
    stat: ProcStat
    pidfd: int | None
    """Open while the zombie is known, to tell when it is reaped; None where it was
    found without one (then the PID clock says when to look again)."""


class HostCensus:
    """Zombies per parent on the whole machine; one per exporter, reused between calls.

    It holds a descriptor per process on the machine: the constructor raises this
    process's soft limit on open files to its hard limit, and :meth:`close` (or the
    garbage collector) gives them back.
    """

    method = (
        "host: a pidfd per process (exits from epoll), /proc/PID/stat of each process"
        " that exited; readlink /proc/PID/exe of any process without a pidfd"
    )

    def __init__(self) -> None:
        self._clock = PidClock()
        self._epoll = _new_epoll()
        self._watched: dict[int, int] = {}  # pid -> pidfd, alive when last seen
        self._pids: dict[int, int] = {}  # pidfd -> pid
        self._zombies: dict[int, _Zombie] = {}
        self._kthreads: dict[int, ProcStat] = {}  # map-less and alive, seen without pidfd

    def take(self) -> Census:
        window = self._clock.advance()
        listed = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        self._forget_reaped(listed, window)
        fresh: set[int] = set()  # zombies read at this call
        alive: set[int] = set()  # processes without pidfd seen alive at this call
        exited = self._collect_exits(fresh)
        for pid in listed - self._watched.keys() - self._zombies.keys():
            if not self._watch(pid):
                self._look(pid, window, fresh, alive)
        exited |= self._collect_exits(fresh)  # the new ones that had exited already
        alive |= self._watched.keys()
        for pid, zombie in list(self._zombies.items()):
            parent = zombie.stat.ppid
            if pid not in fresh and (parent in exited or parent not in alive):
                self._reread(pid, zombie)  # its parent exited: it has been handed on
        self._kthreads = {pid: st for pid, st in self._kthreads.items() if pid in alive}
        return Census(dict(Counter(z.stat.ppid for z in self._zombies.values())))

    def close(self) -> None:
        """Close every descriptor the census holds."""
        for fd in [*self._pids, *(z.pidfd for z in self._zombies.values() if z.pidfd is not None)]:
            os.close(fd)
        self._pids.clear()
        self._watched.clear()
        self._zombies.clear()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, AttributeError):
            pass

    def _forget_reaped(self, listed: set[int], window: tuple[int, int] | None) -> None:
        """Drop the zombies reaped since the last call (their PIDs may be in use again)."""
        for pid, zombie in list(self._zombies.items()):
            if pid in listed and not _maybe_reused(pid, window):
                continue
            if pid in listed and zombie.pidfd is not None and _exists(zombie.pidfd):
                continue
            self._drop(pid)

    def _collect_exits(self, fresh: set[int]) -> set[int]:
        """PIDs of the watched processes that exited; those not yet reaped become zombies."""
        if self._epoll is None:
            return set()
        exited = set()
        # Room for every descriptor: poll() returns at most 1,023 events unless told more.
        for fd, _ in self._epoll.poll(0, max(1, len(self._pids))):
            pid = self._pids.pop(fd)
            del self._watched[pid]
            self._epoll.unregister(fd)
            exited.add(pid)
            st = _stat(pid)
            # The stat is this process's only if it still exists after the read.
            if st is not None and _reapable(st) and _exists(fd):
                self._zombies[pid] = _Zombie(st, fd)
                fresh.add(pid)
            else:
                os.close(fd)  # reaped already; a new process with its PID is watched anew
        return exited

    def _watch(self, pid: int) -> bool:
        """Watch ``pid`` through a pidfd; False where none can be had."""
        if self._epoll is None:
            return False
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True  # gone meanwhile: nothing to watch
        except OSError:
            return False  # out of descriptors, or not allowed
        try:
            self._epoll.register(fd, select.EPOLLIN)
        except OSError:
            os.close(fd)
            return False
        self._watched[pid] = fd
        self._pids[fd] = pid
        return True

    def _look(
        self, pid: int, window: tuple[int, int] | None, fresh: set[int], alive: set[int]
    ) -> None:
        """A process without a pidfd: alive if its exe link reads; otherwise its stat."""
        try:
            os.readlink(f"/proc/{pid}/exe")
            alive.add(pid)
            return
        except OSError:
            pass  # ENOENT: no map (or gone); EACCES: not ours to look at; stat says which
        st = self._kthreads.get(pid)
        if st is None or _maybe_reused(pid, window):
            st = _stat(pid)
        if st is None:
            return
        if _reapable(st):
            self._zombies[pid] = _Zombie(st, None)
            fresh.add(pid)
        else:
            alive.add(pid)
            if not st.zombie and KTHREADD in (st.pid, st.ppid):
                self._kthreads[pid] = st

    def _reread(self, pid: int, zombie: _Zombie) -> None:
        st = _stat(pid)
        if st is None or not _reapable(st) or (zombie.pidfd and not _exists(zombie.pidfd)):
            self._drop(pid)
        else:
            zombie.stat = st

    def _drop(self, pid: int) -> None:
        zombie = self._zombies.pop(pid)
        if zombie.pidfd is not None:
            os.close(zombie.pidfd)


def _new_epoll() -> select.epoll | None:
    """An epoll set for pidfds, with room for one per process; None without pidfds."""
    if not hasattr(os, "pidfd_open") or not hasattr(select, "epoll"):
        return None
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return None  # ENOSYS: a kernel before 5.3
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            pass  # the processes beyond the limit are looked at the slower way
    return select.epoll()


def _exists(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` has not been reaped (a zombie still exists)."""
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except ProcessLookupError:
        return False
    except OSError as error:
        return error.errno == errno.EPERM  # someone else's: it exists
    return True


def _maybe_reused(pid: int, window: tuple[int, int] | None) -> bool:
    """Whether ``pid`` may have been handed to a new process since the last call."""
    return window is None or allocated_between(pid, window)


def _stat(pid: int) -> ProcStat | None:
    try:
        return read_stat(pid)
    except DiagnosticsError:
        return None


def _reapable(st: ProcStat) -> bool:
    """A zombie its parent can reap: not a thread group whose other threads still run."""
    return st.zombie and (st.threads or 1) <= 1
