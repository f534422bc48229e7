"""Which children a test left behind, whom to count each against, and what to do with it.

The instrument behind ``pytest --child-leaks`` (diagnostics.pytest_plugin), kept
apart so that pytest loads it (and psutil under it) only when the check is on.

A test is a window: the pytest process's children when it begins, and when it
ends. A child new at the end is looked at; whom it is counted against comes
from its spawn record (diagnostics.spawns), not from the window it was first
seen in:

- started by the thread running the tests, or by a thread the test itself
  started: the test's;
- started by a thread that another test left running, or one started between
  tests (a session fixture's): not this test's. The test run is charged with it,
  at its end, if it is still there: the test that left the thread has finished
  and its result is out (on the terminal, in JUnit XML, on its way to the xdist
  controller), so the report names that test rather than rewrite its result;
- no record (an orphan adopted by pytest, the subreaper, once its parent
  exited; or a child of C code): the test during which it started, by its start
  time (to the clock tick, 10 ms), unless a thread of another test also spawned
  during the test (its child may be the orphan's parent): then the run's.

The end of the run (``finish``) looks at every child left that no test was
charged with: children started between tests, late children of leftover
threads, orphans that came back after their test.

A zombie's exit status is read with ``waitid(WNOWAIT)``, which leaves it in
place. Whether it is reaped then is the caller's policy (``ReapPolicy``),
and never behind an owner's back (diagnostics.owners): a zombie an object owns
is left to it, or with "all" reaped through it so it records the exit.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from types import CodeType
from typing import Literal

from diagnostics.errors import DiagnosticsError
from diagnostics.heldfds import Held, held_from_parent, pipes_and_sockets
from diagnostics.owners import Owner, find_owner
from diagnostics.procstatus import cmdline
from diagnostics.proctable import ProcStat, boot_time, decode_exit_status, open_table
from diagnostics.spawns import TICK_S, SpawnRecord, SpawnTracker, ThreadNote, since_boot

ReapPolicy = Literal["unowned", "all", "none"]
"""unowned: reap the zombies nothing else in the process owns (nothing else would);
all: those too, and the owned ones through their owner; none: leave every one.
(pytest_plugin.REAP_CHOICES spells them for the command line; a test keeps them equal.)"""

Identity = tuple[int, float]


class Fate(Enum):
    """What became of a leaked zombie after the report."""

    REAPED = "reaped"
    REAPED_BY_OWNER = "reaped through its owner"
    LEFT_TO_OWNER = "left to its owner"
    LEFT = "left unreaped"


@dataclass(frozen=True)
class Blame:
    """Whom a leaked child is counted against, and why."""

    test: str | None
    """The test charged with it; None: the test run as a whole."""
    during: str | None
    """The test running when it started; None: between tests (or unknown, ``placed``)."""
    thread: ThreadNote | None = None
    """The thread that started it, when not the one running the tests."""
    by_start_time: bool = False
    """No spawn record: placed by its start time."""


@dataclass(frozen=True)
class Leak:
    """One process left behind, with everything the report says about it."""

    pid: int
    state: str
    """The one-letter state of ps(1): Z for a zombie, S, R, T... for a running one."""
    command: str
    """The command line; for a zombie, which has none left, ``[comm]``."""
    blame: Blame
    record: SpawnRecord | None = None
    exit_status: str | None = None
    """How a zombie ended ("0", "3", "SIGKILL"); None for a running one or unknown."""
    owner: str | None = None
    fate: Fate | None = None
    held: tuple[Held, ...] = ()
    """Sockets and pipes of the pytest process it holds (when asked)."""

    @property
    def zombie(self) -> bool:
        return self.state == "Z"


@dataclass
class Window:
    """One test, from the moment its check begins."""

    test: str
    before: set[int]
    seq: int
    opened: float | None


class ChildWatch:
    """The children of this process, test by test and at the end of the run.

    ``open``/``close`` bracket a test; ``finish`` is the end of the run. Every
    child is looked at by identity (PID and start time), so a PID reaped and
    reused between two looks is a new child.
    """

    def __init__(self, tracker: SpawnTracker, reap: ReapPolicy, fds: bool) -> None:
        self._tracker = tracker
        self._reap = reap
        self._fds = fds
        self._settled: set[Identity] = set()
        """Children not to look at again: there at the start, reported, or not a leak."""
        self._running: set[Identity] = set()
        """Reported while running: reaped by the policy once they exit."""
        self._windows: list[tuple[float, float, str]] = []
        for pid in self._children():
            stat = _stat(pid)
            if stat is not None:
                self._settled.add((pid, stat.started))

    def open(self, test: str, code: CodeType | None = None) -> Window:
        """A test begins (``code``: its function's, where spawn stacks may stop)."""
        self._tracker.enter(test, code)
        return Window(test, self._children(), self._tracker.seq, since_boot())

    def close(self, window: Window, *, checked: bool = True) -> list[Leak]:
        """The leaks counted against ``window``'s test; the others wait for ``finish``.

        ``checked=False`` (the test's check is off): its children are not reported,
        now or at the end.
        """
        self._tracker.leave()
        closed = since_boot()
        if window.opened is not None and closed is not None:
            self._windows.append((window.opened, closed, window.test))
        children = self._look()
        records = self._tracker.since(window.seq)
        strangers = any(_blamed(record) != window.test for record in records)
        new = (children - window.before) | {r.pid for r in records if r.pid in children}
        leaks = []
        for stat, record in self._unsettled(new):
            blame = self._blame(record, stat, strangers)
            if blame.test != window.test:
                continue  # another test's, or the run's: ``finish`` reports it if it stays
            self._settled.add((stat.pid, stat.started))
            if checked:
                leaks += self._examine(stat, record, blame)
        self._tracker.prune(children)
        return leaks

    def finish(self) -> list[Leak]:
        """Every child still here that no test was charged with: the run's."""
        leaks = []
        for stat, record in self._unsettled(self._look()):
            blame = self._blame(record, stat, strangers=True)
            self._settled.add((stat.pid, stat.started))
            leaks += self._examine(stat, record, dataclasses.replace(blame, test=None))
        return leaks

    def _look(self) -> set[int]:
        """The children now, their spawn records matched, the exited ones of earlier
        reports dealt with."""
        children = self._children()
        self._tracker.settle()
        self._collect_exited(children)
        return children

    def _unsettled(self, pids: set[int]) -> Iterator[tuple[ProcStat, SpawnRecord | None]]:
        """The children among ``pids`` not looked at before, with their spawn records."""
        for pid in sorted(pids):
            stat = _stat(pid)
            if stat is not None and (pid, stat.started) not in self._settled:
                yield stat, self._tracker.lookup(pid, stat.started)

    # -- attribution -------------------------------------------------------------------

    def _blame(self, record: SpawnRecord | None, stat: ProcStat, strangers: bool) -> Blame:
        if record is None:
            during = self._placed(stat.started)
            return Blame(None if strangers else during, during, by_start_time=True)
        thread = None if record.thread.runner else record.thread
        return Blame(_blamed(record), record.during, thread)

    def _placed(self, started: float) -> str | None:
        """The test during which a process that started at ``started`` started, if any."""
        since_boot = started - boot_time()
        for opened, closed, test in reversed(self._windows):
            if opened - TICK_S < since_boot <= closed:
                return test
        return None

    # -- examining and reaping ---------------------------------------------------------------

    def _examine(self, stat: ProcStat, record: SpawnRecord | None, blame: Blame) -> list[Leak]:
        """The leak ``stat`` is, if it is one (a list of one, or none)."""
        pid = stat.pid
        try:
            command = cmdline(pid)  # before any reaping: afterwards the PID names nothing
        except DiagnosticsError:
            return []  # its owner reaped it since we listed it: not left behind
        owner = find_owner(pid, record, zombie=stat.zombie)
        if owner is not None and owner.helper:
            return []  # multiprocessing keeps it for the life of the process, and ends it
        if not stat.zombie:
            self._running.add((pid, stat.started))
            held = self._held(pid, record) if self._fds else ()
            return [Leak(pid, stat.state, command, blame, record, owner=_name(owner), held=held)]
        status = exit_status(pid)
        fate = self._settle_zombie(pid, owner)
        return [Leak(pid, "Z", command, blame, record, status, _name(owner), fate)]

    def _held(self, pid: int, record: SpawnRecord | None) -> tuple[Held, ...]:
        mine = frozenset(pipes_and_sockets(os.getpid()).values())
        return tuple(held_from_parent(pid, mine | (record.parent_fds if record else frozenset())))

    def _settle_zombie(self, pid: int, owner: Owner | None) -> Fate:
        if owner is None:
            if self._reap == "none":
                return Fate.LEFT
            _reap(pid)
            return Fate.REAPED
        if self._reap == "all" and owner.reap is not None:
            owner.reap()
            return Fate.REAPED_BY_OWNER
        return Fate.LEFT_TO_OWNER

    def _collect_exited(self, children: set[int]) -> None:
        """Children reported while running that have exited since: reaped as the policy says."""
        for pid, started in list(self._running):
            stat = _stat(pid) if pid in children else None
            if stat is None or stat.started != started:
                self._running.discard((pid, started))  # reaped by someone: done
            elif stat.zombie:
                self._running.discard((pid, started))
                record = self._tracker.lookup(pid, started)
                self._settle_zombie(pid, find_owner(pid, record, zombie=True))

    def _children(self) -> set[int]:
        return open_table().children(os.getpid())


def _blamed(record: SpawnRecord) -> str | None:
    """The test a record counts against: the one running, if its own thread spawned."""
    thread = record.thread
    if thread.runner or (thread.known and thread.started_during == record.during):
        return record.during
    return None


def exit_status(pid: int) -> str | None:
    """How zombie child ``pid`` ended, read without reaping it (``waitid`` with WNOWAIT)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except ChildProcessError:
        return None
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return decode_exit_status(info.si_status << 8)
    return decode_exit_status(info.si_status)  # killed (CLD_KILLED) or dumped (CLD_DUMPED)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # its owner reaped it in between


def _stat(pid: int) -> ProcStat | None:
    try:
        return open_table().stat(pid)
    except DiagnosticsError:
        return None


def _name(owner: Owner | None) -> str | None:
    return owner.name if owner is not None else None
