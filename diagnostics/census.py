"""Who holds zombies right now, on the whole host or below one process: cheap enough to
run at every Prometheus scrape.

A census is a count of zombies per parent (the process that must reap them). Two ways
to take it, both reading each process at most once:

- :class:`TreeCensus`, below one process: the :class:`~diagnostics.sampler.Sampler`'s
  walk of the kernel's children lists (``/proc/PID/task/TID/children``), which reads
  the stat of the tree's processes only and never a known zombie twice.
- :class:`HostCensus`, every process on the machine. Finding zombies anywhere needs a
  look at every PID, and reading ``/proc/PID/stat`` (the kernel formats some fifty
  fields) is most of what that costs. A zombie has no memory map left, so
  ``readlink(/proc/PID/exe)`` fails for it with ENOENT, at less than half the cost of a
  stat read; only the processes without a map (zombies, kernel threads, processes in
  the middle of exiting) or whose map we may not look at (other users' processes,
  unless root) have their stat read. A zombie or kernel thread once read is
  remembered, as the sampler does, until its PID may have been handed out again (a
  :class:`~diagnostics.proctable.PidClock` window) or, for a zombie, until its parent
  is no longer alive (it has then been handed to a subreaper or init).

A task that shows as a zombie while other threads of it still run (its main thread
called ``pthread_exit``; ``ps`` shows ``Zl``) is alive and cannot be reaped yet: it is
not counted, as ``doctor`` does not count it.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from diagnostics.errors import DiagnosticsError
from diagnostics.proctable import PidClock, ProcStat, allocated_between, read_stat
from diagnostics.sampler import Sampler

Seen = Literal["mapped", "gone"]

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


class HostCensus:
    """Zombies per parent on the whole machine; one per exporter, reused between calls."""

    method = (
        "host: readlink /proc/PID/exe of every process, /proc/PID/stat of those"
        " without one (zombies, kernel threads)"
    )

    def __init__(self) -> None:
        self._clock = PidClock()
        self._known: dict[int, ProcStat] = {}
        """Map-less tasks already read: zombies and kernel threads."""

    def take(self) -> Census:
        window = self._clock.advance()
        live: set[int] = set()
        zombies: dict[int, ProcStat] = {}
        remembered: list[int] = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            seen = self._look(pid, window)
            if seen == "gone":
                continue
            if seen == "mapped" or not _reapable(seen):
                live.add(pid)
                continue
            zombies[pid] = seen
            if self._known.get(pid) is seen:
                remembered.append(pid)
        for pid in remembered:  # a parent that exited has handed its zombies on: read again
            if zombies[pid].ppid not in live:
                st = self._read(pid)
                if st is None or not _reapable(st):
                    del zombies[pid]
                else:
                    zombies[pid] = st
        self._known = {pid: st for pid, st in self._known.items() if pid in live or pid in zombies}
        return Census(dict(Counter(st.ppid for st in zombies.values())))

    def _look(self, pid: int, window: tuple[int, int] | None) -> ProcStat | Seen:
        """ "mapped" for a process with a memory map (alive); otherwise its stat, read or
        remembered; "gone" for a PID that vanished meanwhile."""
        try:
            os.readlink(f"/proc/{pid}/exe")
            self._known.pop(pid, None)
            return "mapped"
        except OSError:
            pass  # ENOENT: no map (or gone); EACCES: not ours to look at; stat says which
        known = self._known.get(pid)
        if known is not None and window is not None and not allocated_between(pid, window):
            return known
        return self._read(pid) or "gone"

    def _read(self, pid: int) -> ProcStat | None:
        try:
            st = read_stat(pid)
        except DiagnosticsError:
            return None
        if st.zombie or _kthread(st):
            self._known[pid] = st
        else:
            self._known.pop(pid, None)
        return st


def _reapable(st: ProcStat) -> bool:
    """A zombie its parent can reap: not a thread group whose other threads still run."""
    return st.zombie and (st.threads or 1) <= 1


def _kthread(st: ProcStat) -> bool:
    return not st.zombie and KTHREADD in (st.pid, st.ppid)
