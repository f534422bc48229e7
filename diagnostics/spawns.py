"""Where each child of this process was started: spawn records, matched to PIDs.

While the tracker is on, every way Python starts a child is seen in the thread
that starts it, at that moment:

- ``os.fork`` and ``os.forkpty`` raise an audit event (``sys.addaudithook``)
  before forking, and the at-fork hooks (``os.register_at_fork``) run just
  before the fork and, in the child, just after it. The parent's hooks are not
  handed the PID, but the child knows its own: it writes it into a slot of a
  page it shares with the parent (``ChildSlots``), which the parent reads when
  it needs it. The parent does nothing after the fork: right after one, while
  the child shares its memory, each first write to a page copies it, and the
  same Python work costs twenty times what it costs before the fork. A fork
  made by C code through ``PyOS_BeforeFork`` (no audit event) is seen the same
  way, by the at-fork hooks alone.
- ``subprocess.Popen`` raises its audit event inside ``_execute_child``, whose
  ``self`` is the Popen: the record keeps a weak reference to it, so that the
  leak report can tell later whether that Popen still owns the child
  (diagnostics.owners). The fork itself goes through one of the two calls below.
- ``_posixsubprocess.fork_exec`` (what subprocess uses by default, and
  multiprocessing's spawn and forkserver start methods) raises no audit event,
  and ``os.posix_spawn``/``posix_spawnp`` raise theirs before the child exists
  and nothing after. Both return the PID, so while the tracker is on they are
  wrapped where callers look them up (``RETURNING``) and the wrapper reads it; a
  wrapped call made under a Popen's ``_execute_child`` is that Popen's spawn.
  Code that took a reference to them before the tracker started goes past the
  wrapper: a Popen's child is then matched by the Popen's own ``pid``, any other
  has no record (the report says so), never a wrong one.

A record keeps the stack as (file, line, function) triples, never the frames
(they would keep every local of the test alive), and the child's identity: its
PID and when it was born, the moments (on the boot clock /proc/PID/stat counts
start times on) between which the spawning call ran. A process matches the
record only if its start time falls in that window, so a PID reaped and handed
out again never matches an old record. No /proc read is made at a spawn.

Each record also notes which test was running (the plugin says, through
``enter``/``leave``) and which thread spawned, with the test that thread was
started in: a thread that test A left running and that spawns during test B
is not B's doing.

Audit and at-fork hooks cannot be removed, so they are installed once per
process, on the first activation, and do nothing but a set lookup while the
tracker is off. A forked child turns its copy off (``after_in_child``): the
hooks and locks it inherits are its parent's business. Linux only (the boot
clock, /proc); elsewhere records are made but match no process.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from diagnostics.proctable import CLOCK_TICKS, boot_time

Frame = tuple[str, int, str]
"""(file name, line number, qualified function name) of one frame of a spawn stack."""

FORK = "os.fork"
FORKPTY = "os.forkpty"
POPEN = "subprocess.Popen"
POSIX_SPAWN = "os.posix_spawn"
POSIX_SPAWNP = "os.posix_spawnp"
FORK_EXEC = "_posixsubprocess.fork_exec"
C_FORK = "a fork by C code"
AUDITED = frozenset({FORK, FORKPTY, POPEN})
"""The audit events that open a record; the other calls are seen by their wrappers."""
FORKS = frozenset({FORK, FORKPTY, C_FORK})
"""The calls whose child writes its own PID (``ChildSlots``)."""
RETURNING = (
    ("_posixsubprocess", "fork_exec", FORK_EXEC),
    ("subprocess", "_fork_exec", FORK_EXEC),
    ("os", "posix_spawn", POSIX_SPAWN),
    ("os", "posix_spawnp", POSIX_SPAWNP),
)
"""The calls that return a PID unannounced, where callers look them up: subprocess binds
its own name for fork_exec at import (3.11.7 and later), so both names are wrapped."""
TICK_S = 1 / CLOCK_TICKS
"""Resolution of a start time in /proc/PID/stat: it is the boot clock, rounded down."""
SLACK_S = 1e-6
"""Float rounding between the two clocks' readings."""
POPEN_DEPTH = 4
"""How far up from a spawn its Popen's ``_execute_child`` frame can be (fork_exec is
called from it, posix_spawn from ``_posix_spawn`` under it; a wrapper adds one)."""
SLOTS = 4096
"""Forks whose child's PID can wait to be read (the oldest is read before its slot
is taken again)."""
FORK_GRACE_S = 2.0
"""How long a forked child may take to write its PID (it does so before it runs any
code of its own, once scheduled); past that, the fork failed or the child was killed."""


@dataclass(frozen=True)
class ThreadNote:
    """The thread that spawned, as the report names it."""

    name: str
    runner: bool
    """True for the thread that runs the tests (it spawns for whatever test is running)."""
    known: bool
    """False for a thread not started through ``threading``: where it came from is unknown."""
    started_during: str | None
    """The test during which it was started; None: between tests (or before the first)."""


@dataclass(eq=False, slots=True)
class SpawnRecord:
    """One child started by this process, from the call until its PID is known."""

    call: str
    """The call that made the child: "os.fork", "subprocess.Popen", ..."""
    stack: tuple[Frame, ...]
    """The spawning thread's stack at the call, innermost frame first, down to the test
    function (``SpawnTracker.test_code``) or, without one, to the bottom."""
    thread: ThreadNote
    during: str | None
    """The test running when the child was started; None: between tests."""
    seq: int
    """Order of the records: the plugin keeps the number a test began at."""
    parent_fds: frozenset[str] = frozenset()
    """Sockets and pipes this process held at the call (only when asked: ``note_fds``)."""
    popen: weakref.ref[Any] | None = None
    called: float | None = field(default=None, repr=False)
    """When the spawning call began (seconds since boot)."""
    pid: int | None = None
    born: tuple[float, float] | None = None
    """Seconds since boot between which the child was started: the call's start, and
    its return (or, for a fork, the moment the child wrote its PID). With ``pid``, the
    child's identity."""
    slot: int | None = field(default=None, repr=False)
    """The ``ChildSlots`` slot a fork's child writes its PID into, until it is read."""
    opener: tuple[int, CodeType] | None = field(default=None, repr=False)
    """A Popen's ``_execute_child`` frame (its id and code; not the frame, which would keep
    its locals alive): a wrapped call under it is that Popen's spawn."""

    def is_of(self, pid: int, started: float) -> bool:
        """Whether the process ``pid`` started at ``started`` (unix time, as
        diagnostics.proctable reads it) is the child this record saw being started."""
        if self.pid != pid or self.born is None:
            return False
        since_boot = started - boot_time()
        first, last = self.born
        return first - TICK_S - SLACK_S < since_boot <= last + SLACK_S


class ChildSlots:
    """Where forked children write their PID and the time: memory shared with them.

    An anonymous shared mapping is the same memory in the parent and in every child
    forked after it was made. The parent takes a slot before a fork (and empties it);
    the child writes (PID, seconds since boot) into it in its at-fork hook, before any
    code of its own; the parent reads it whenever it wants the PID.
    """

    SLOT = struct.Struct("=qd")

    def __init__(self, count: int = SLOTS) -> None:
        self._memory = mmap.mmap(-1, count * self.SLOT.size)  # MAP_SHARED | MAP_ANONYMOUS
        self._count = count
        self._next = 0
        self.pending: dict[int, SpawnRecord] = {}
        """slot -> the fork record whose child's PID has not been read from it yet."""

    def take(self, record: SpawnRecord) -> tuple[SpawnRecord, tuple[int, float] | None] | None:
        """Give the next slot to ``record``. If it was still another's (SLOTS forks ago,
        unread), return that record and what its child wrote, if anything."""
        slot = self._next
        self._next = (slot + 1) % self._count
        evicted = self.pending.pop(slot, None)
        written = self.read(slot) if evicted is not None else None
        self.pending[slot] = record
        self.SLOT.pack_into(self._memory, slot * self.SLOT.size, 0, 0.0)
        record.slot = slot
        return (evicted, written) if evicted is not None else None

    def write(self, slot: int, pid: int, at: float) -> None:
        """In the child: its PID and the time, for the parent."""
        self.SLOT.pack_into(self._memory, slot * self.SLOT.size, pid, at)

    def read(self, slot: int) -> tuple[int, float] | None:
        pid, at = self.SLOT.unpack_from(self._memory, slot * self.SLOT.size)
        return (pid, at) if pid else None

    def free(self, slot: int) -> None:
        self.pending.pop(slot, None)


class SpawnTracker:
    """The spawn records of this process; one per process (``TRACKER``).

    ``activate``/``deactivate`` nest (an inner pytest run in the same process);
    the wrappers and the recording are on while at least one caller wants them.
    The records are what callers read: ``settle`` then ``lookup`` by identity,
    ``since`` by order, ``prune`` what no longer names a child.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant: a signal handler may spawn mid-hook
        self._users = 0
        self._installed = False
        self._records: list[SpawnRecord] = []
        self._open: dict[int, SpawnRecord] = {}  # thread ident -> record whose PID is due
        self._by_pid: dict[int, SpawnRecord] = {}
        self._slots: ChildSlots | None = None
        self._forking: dict[int, int] = {}  # thread ident -> slot of the fork under way
        self._pid: int | None = None  # the process the state above belongs to
        self._seq = 0
        self._runner: threading.Thread | None = None
        self._runner_ident: int | None = None
        self._runner_note: ThreadNote | None = None  # one per test: most spawns are its
        self._origins: weakref.WeakKeyDictionary[threading.Thread, str | None] = (
            weakref.WeakKeyDictionary()
        )
        self.context: str | None = None
        """The test running now (the plugin sets it); None between tests."""
        self.note_fds = False
        """Record this process's sockets and pipes at each spawn (``--child-leaks-fds``)."""
        self.full_stacks = False
        """Keep whole stacks (``-vv``), not just the frames down to the test function."""
        self.test_code: CodeType | None = None
        """The running test function's code: a stack is kept down to its frame. Below it
        is pytest's runner (40 frames), the same for every spawn of the test; and every
        frame kept is objects touched (reference counts written): in a process that
        forks, each first write to a page after a fork faults (it may copy the page)."""

    # -- switching on and off ------------------------------------------------------------

    def activate(self) -> None:
        if self._pid is not None and self._pid != os.getpid():  # a forked copy
            self._lock = threading.RLock()  # another thread may have held it at the fork
            self._forget()  # the parent's records, and its slots: never write into those
        with self._lock:
            if not self._installed:
                sys.addaudithook(self._audit)
                os.register_at_fork(before=self._before_fork, after_in_child=self._in_child)
                self._installed = True
            self._users += 1
            if self._users == 1:
                self._pid = os.getpid()
                self._runner = threading.current_thread()
                self._runner_ident = threading.get_ident()
                self._slots = self._slots or ChildSlots()
                self._wrap_returning_calls()

    def deactivate(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self._unwrap()
                self._forget()

    def _forget(self) -> None:
        self._records, self._open, self._by_pid, self._forking = [], {}, {}, {}
        self._slots = None
        self.context, self.test_code = None, None
        self.note_fds = self.full_stacks = False

    @property
    def active(self) -> bool:
        return self._users > 0

    def _wrap_returning_calls(self) -> None:
        """Wrap the calls that return the PID and that no after-event reports."""
        import _posixsubprocess  # noqa: F401  (so that it is in sys.modules)

        for module_name, name, call in RETURNING:
            module = sys.modules.get(module_name)
            original = getattr(module, name, None)
            if original is not None and getattr(original, "_tracker", None) is not self:
                setattr(module, name, self._wrapper(original, call))

    def _unwrap(self) -> None:
        """Put the originals back, wherever our wrappers are (a module imported while the
        tracker was on took the wrapper under its own name); leave other wrappers alone."""
        for module_name, name, _ in RETURNING:
            module = sys.modules.get(module_name)
            current = getattr(module, name, None)
            if getattr(current, "_tracker", None) is self:
                setattr(module, name, current.__wrapped__)  # type: ignore[union-attr]

    def _wrapper(self, original: Callable[..., int], call: str) -> Callable[..., int]:
        def spawn(*args: Any, **kwargs: Any) -> int:
            if not self._users:
                return original(*args, **kwargs)
            ident = threading.get_ident()
            caller = sys._getframe(1)
            record = self._executing_popen(caller) or self._new(call, caller)
            record.called = since_boot()
            self._open[ident] = record  # a preexec_fn fork inside is this call's, not another
            try:
                pid = original(*args, **kwargs)
            except BaseException:
                self._discard(record)
                raise
            finally:
                self._open.pop(ident, None)
            self._matched(record, pid)
            return pid

        spawn.__wrapped__ = original  # type: ignore[attr-defined]
        spawn._tracker = self  # type: ignore[attr-defined]
        spawn.__name__ = original.__name__
        spawn.__doc__ = original.__doc__
        return spawn

    # -- hooks -----------------------------------------------------------------------------

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in AUDITED or not self._users:
            return
        caller = sys._getframe(1)
        popen = caller.f_locals.get("self") if event == POPEN else None
        record = self._new(event, caller, popen=popen)
        if event == POPEN:
            record.opener = id(caller), caller.f_code
            record.called = since_boot()
        with self._lock:
            self._open[threading.get_ident()] = record

    def _before_fork(self) -> None:
        """Everything the parent does for a fork, done before it (see the module's doc)."""
        ident = threading.get_ident()
        self._forking.pop(ident, None)
        if not self._users or self._slots is None:
            return
        caller = sys._getframe(1)
        record = self._open.get(ident)
        if record is not None and record.call == POPEN:
            if self._executing_popen(caller) is not None:
                return  # a Popen's fork (preexec_fn): its PID comes from the Popen
            record = None  # a Popen that ended without spawning through a wrapper
        if record is not None and record.call not in FORKS:
            return  # a fork inside a wrapped call (preexec_fn): the wrapper gets the PID
        if record is None:  # no audit event: C code forking through PyOS_BeforeFork
            record = self._new(C_FORK, caller)
        else:
            del self._open[ident]  # the fork's own record, opened by its audit event
        record.called = since_boot()
        with self._lock:
            evicted = self._slots.take(record)
            if evicted is not None:
                old, written = evicted
                old.slot = None
                if written is not None:
                    self._matched(old, *written)
                else:
                    self._discard(old)  # SLOTS forks on and still unwritten: never will be
            self._forking[ident] = record.slot  # type: ignore[assignment]

    def _in_child(self) -> None:
        """In a forked child, first thing: tell the parent this PID, then switch off (the
        hooks and state it inherits are its parent's business)."""
        users, self._users = self._users, 0
        slot = self._forking.get(threading.get_ident())
        if users and slot is not None and self._slots is not None:
            self._slots.write(slot, os.getpid(), since_boot() or 0.0)

    # -- records ---------------------------------------------------------------------------

    def _new(self, call: str, frame: FrameType, *, popen: object = None) -> SpawnRecord:
        fds: frozenset[str] = frozenset()
        if self.note_fds:
            from diagnostics.heldfds import pipes_and_sockets

            fds = frozenset(pipes_and_sockets(os.getpid()).values())
        with self._lock:
            self._seq += 1
            record = SpawnRecord(
                call=call,
                stack=capture(frame, None if self.full_stacks else self.test_code),
                thread=self._note(),
                during=self.context,
                seq=self._seq,
                parent_fds=fds,
                popen=_weak(popen),
            )
            self._records.append(record)
            return record

    def _note(self) -> ThreadNote:
        """The spawning thread (the one running now)."""
        if threading.get_ident() == self._runner_ident:
            note = self._runner_note
            if note is None or note.started_during != self.context:
                name = self._runner.name if self._runner else "MainThread"
                note = self._runner_note = ThreadNote(name, True, True, self.context)
            return note
        thread = threading.current_thread()
        if isinstance(thread, threading._DummyThread):
            return ThreadNote(thread.name, runner=False, known=False, started_during=None)
        # A thread not seen at the last boundary was started since: during this context.
        origin = self._origins.setdefault(thread, self.context)
        return ThreadNote(thread.name, runner=False, known=True, started_during=origin)

    def _executing_popen(self, frame: FrameType | None) -> SpawnRecord | None:
        """This thread's Popen record, if that Popen is executing under ``frame`` (its
        ``_execute_child`` frame is a few frames up): the call seen is its spawn. A Popen
        that ended without one (it failed first, or spawned past the wrappers) has left
        its record open, and must not take the next spawn of the thread as its own."""
        record = self._open.get(threading.get_ident())
        if record is None or record.call != POPEN or record.opener is None:
            return None
        identity, code = record.opener
        for _ in range(POPEN_DEPTH):
            if frame is None:
                break
            if id(frame) == identity and frame.f_code is code:
                return record
            frame = frame.f_back
        return None

    def _matched(self, record: SpawnRecord, pid: int, until: float | None = None) -> None:
        """``record``'s child is ``pid``, born between the call and ``until`` (now)."""
        until = until if until is not None else since_boot()
        with self._lock:
            record.pid, record.opener = pid, None
            if record.called is not None and until is not None:
                record.born = record.called, until
            self._by_pid[pid] = record

    def _collect(self, record: SpawnRecord) -> bool:
        """Read the PID a fork's child wrote; False while the slot is still empty."""
        if self._slots is None or record.slot is None:
            return True
        written = self._slots.read(record.slot)
        if written is None:
            return False
        self._slots.free(record.slot)
        record.slot = None
        self._matched(record, *written)
        return True

    def _discard(self, record: SpawnRecord) -> None:
        with self._lock:
            if record in self._records:
                self._records.remove(record)

    # -- what the plugin reads -----------------------------------------------------------

    @property
    def seq(self) -> int:
        return self._seq

    def enter(self, test: str, code: CodeType | None = None) -> None:
        """A test begins (``code``: its function's): the threads started since the last
        boundary were started between tests."""
        with self._lock:
            self._note_threads()
            self.context, self.test_code = test, code

    def leave(self) -> None:
        """The test ends: the threads it started and left running are noted as its."""
        with self._lock:
            self._note_threads()
            self.context, self.test_code = None, None

    def _note_threads(self) -> None:
        for thread in threading.enumerate():
            if thread is not self._runner:
                self._origins.setdefault(thread, self.context)

    def settle(self) -> None:
        """Match what was not matched at the spawn: forks, by the PID their child wrote
        (waiting for a child not yet scheduled, up to ``FORK_GRACE_S`` after its fork);
        Popens whose spawn went past the wrappers (a reference to fork_exec taken before
        the tracker started), by the PID the Popen has."""
        self._settle_forks()
        with self._lock:
            for record in self._records:
                if record.pid is None and record.popen is not None:
                    popen = record.popen()
                    pid = getattr(popen, "pid", None)
                    if isinstance(pid, int) and getattr(popen, "returncode", 0) is None:
                        self._matched(record, pid)  # not reaped by it: the PID is its child's

    def _settle_forks(self) -> None:
        if self._slots is None:
            return
        waiting = list(self._slots.pending.values())
        while waiting:
            with self._lock:
                waiting = [record for record in waiting if not self._collect(record)]
            now = since_boot() or 0.0
            late = [r for r in waiting if now - (r.called or 0.0) > FORK_GRACE_S]
            for record in late:  # the fork failed, or its child died before it could write
                self._slots.free(record.slot)  # type: ignore[arg-type]
                record.slot = None
                self._discard(record)
            waiting = [record for record in waiting if record not in late]
            if waiting:
                time.sleep(0.001)

    def lookup(self, pid: int, started: float) -> SpawnRecord | None:
        """The record of the child ``pid`` that started at ``started`` (unix time), if
        it was seen being started."""
        record = self._by_pid.get(pid)
        return record if record is not None and record.is_of(pid, started) else None

    def since(self, seq: int) -> list[SpawnRecord]:
        """Records made after ``seq`` (``seq`` as read when a test began)."""
        with self._lock:
            return [record for record in self._records if record.seq > seq]

    def prune(self, children: set[int]) -> None:
        """Forget the records whose child is no longer a child (reaped: its PID is free).

        A record still waiting for its PID is kept while its thread is making it.
        """
        with self._lock:
            waiting = set(map(id, self._open.values()))
            waiting.update(map(id, self._slots.pending.values() if self._slots else ()))
            kept = []
            for record in self._records:
                if record.pid in children or id(record) in waiting:
                    kept.append(record)
                elif record.pid is not None and self._by_pid.get(record.pid) is record:
                    del self._by_pid[record.pid]
            self._records = kept


def capture(frame: FrameType | None, down_to: CodeType | None = None) -> tuple[Frame, ...]:
    """The stack from ``frame`` outwards as (file, line, function), innermost first,
    ending with the frame running ``down_to`` when there is one."""
    frames = []
    while frame is not None:
        code = frame.f_code
        frames.append((code.co_filename, frame.f_lineno or 0, code.co_qualname))
        if code is down_to:
            break
        frame = frame.f_back
    return tuple(frames)


def _weak(obj: object) -> weakref.ref[Any] | None:
    if obj is None:
        return None
    try:
        return weakref.ref(obj)
    except TypeError:
        return None


def since_boot() -> float | None:
    """Now on the boot clock, which /proc/PID/stat's start times count on (Linux); None
    elsewhere (then no record can be matched to a process)."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else None


TRACKER = SpawnTracker()
