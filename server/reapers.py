"""Reaping strategies: the ways a forking parent can (or fails to) collect its children.

A child that exits stays in the process table as a zombie until its parent
collects its status with ``wait``. The kernel tells the parent with SIGCHLD,
but standard signals are not queued: ten children exiting together may be
announced by a single SIGCHLD. Each strategy below is one answer to that, and
the server can run under any of them so the difference can be measured.

Handlers here do no I/O, no logging and no allocation-heavy work: a handler
interrupts the main loop at an arbitrary point (gunicorn once deadlocked by
logging inside its SIGCHLD handler). They touch only integer counters.
"""

from __future__ import annotations

import os

from server.speed import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType


class Counters:
    """What the parent did; printed as JSON when it shuts down (docs/design.md: the
    machine-readable outputs).

    ``reaped`` counts the children collected while serving, ``reaped_at_shutdown``
    those collected by the shutdown sweep after the main loop stopped, so that
    a sample taken while the server still ran can be checked exactly:
    zombies = forked - reaped - children still running. ``peak_unreaped`` is
    the high-water mark of forked - reaped as these counters go, checked after
    each fork (reaping only lowers it, so no other moment can hold a higher
    one): two subtractions and a comparison per fork, no system call.
    ``sigchld_handled`` counts the SIGCHLD deliveries the strategy saw: fewer
    than exits when signals coalesce. (A plain class, not a dataclass:
    importing dataclasses would add a megabyte to the parent that every fork
    copies.)
    """

    accepted: int
    forked: int
    reaped: int
    fork_failures: int
    rejected: int
    peak_unreaped: int
    reaped_at_shutdown: int
    sigchld_handled: int
    __slots__ = tuple(__annotations__)

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self, *, reaps_counted: bool = True) -> dict[str, int | None]:
        """The counters by name; with ``reaps_counted`` False (the kernel reaped, under
        ``ignore``) ``reaped`` and ``peak_unreaped`` are None: the parent never saw
        those reaps, and a 0 or a guess would pass for a measurement."""
        counters: dict[str, int | None] = {name: getattr(self, name) for name in self.__slots__}
        if not reaps_counted:
            counters["reaped"] = counters["peak_unreaped"] = None
        return counters


def reap_all(counters: Counters) -> bool:
    """Collect every child that has exited; True while some child is still running.

    The loop is the point: one SIGCHLD may stand for many exits, so reaping one
    child per signal leaves zombies behind (see SingleReaper).
    """
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
        counters.reaped += 1


def reap_one(counters: Counters) -> None:
    """Collect at most one exited child (the classic mistake)."""
    try:
        pid, _status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return
    if pid:
        counters.reaped += 1


class Strategy:
    """How SIGCHLD is handled while the server runs."""

    name: str
    summary: str
    """The line ``--help`` shows."""
    meaning: str
    """The line a report shows under the strategy's figure: what it does, in words."""
    reaps = True
    """False only for the strategy that reproduces the leak: its zombies are left as they are."""
    reaps_all = True
    """Whether it promises that no zombie is left: a report checks the promise against the
    samples. False for the leak and for the reaper that loses coalesced signals."""
    shortfall: str | None = None
    """Why it leaves some children unreaped, where it reaps yet not all: a report names it."""
    reaps_counted = True
    """False where the kernel, not the parent, collects the children while serving."""
    note_child: Callable[[int], None] | None = None
    """Told the PID of each child just forked, for a strategy that waits by PID (OwnReaper);
    None for the others, which then cost the fork nothing more."""

    def install(self, counters: Counters) -> None:
        raise NotImplementedError

    def on_sigchld_wakeup(self, counters: Counters) -> None:
        """Called by the main loop after SIGCHLD woke it; WakeupReaper and OwnReaper work here."""

    def collect(self, counters: Counters) -> bool:
        """At shutdown: collect the children that have exited; True while one still runs."""
        return reap_all(counters)


class HandlerReaper(Strategy):
    """Reaps in the SIGCHLD handler itself, with ``reap``: the two below differ only there."""

    reap: Callable[[Counters], object]

    def install(self, counters: Counters) -> None:
        reap = self.reap

        def handle(_signum: int, _frame: FrameType | None) -> None:
            counters.sigchld_handled += 1
            reap(counters)

        signal.signal(signal.SIGCHLD, handle)


class LoopReaper(HandlerReaper):
    name = "loop"
    summary = "SIGCHLD handler loops waitpid(-1, WNOHANG) until 0 (the tutorial's grim_reaper)"
    meaning = "the SIGCHLD handler loops waitpid(-1, WNOHANG) until nothing is left"
    reap = staticmethod(reap_all)


class SingleReaper(HandlerReaper):
    name = "single"
    summary = "SIGCHLD handler reaps once per signal; coalesced signals leave zombies"
    meaning = "one waitpid per SIGCHLD: signals that arrive together coalesce into one"
    reaps_all = False
    shortfall = "signals coalesced"
    reap = staticmethod(reap_one)


class NoReaper(Strategy):
    name = "none"
    summary = "never calls waitpid: one zombie per request (the bug)"
    meaning = "the parent never calls waitpid, so every exited child stays a zombie"
    reaps_all = False
    reaps = False

    def install(self, counters: Counters) -> None:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


class IgnoreReaper(Strategy):
    name = "ignore"
    summary = "SIGCHLD set to SIG_IGN: the kernel reaps, the parent learns nothing"
    meaning = "SIGCHLD is ignored, so the kernel reaps children itself"
    reaps_counted = False

    def install(self, counters: Counters) -> None:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)


class WakeupReaper(Strategy):
    name = "wakeup"
    summary = "handler does nothing; set_wakeup_fd wakes the main loop, which reaps"
    meaning = "the handler only wakes the main loop, which reaps every child"

    def install(self, counters: Counters) -> None:
        # A Python-level handler must exist for the wakeup fd to be written;
        # it is deliberately empty so no work happens in signal context.
        signal.signal(signal.SIGCHLD, _do_nothing)

    def on_sigchld_wakeup(self, counters: Counters) -> None:
        counters.sigchld_handled += 1
        reap_all(counters)


class OwnReaper(Strategy):
    """Waits for the children it forked, each by its PID, never with waitpid(-1).

    This is how applications wait: Python's subprocess, libuv (Node.js) and Java
    each keep the PIDs of the processes they started and wait for those alone. It
    reaps every child it forks; but run as PID 1 of a PID namespace (a container's
    application without an init) it is also handed every orphan of the namespace,
    and never waits for those: they stay zombies until PID 1 exits.

    Reaping happens in the main loop, as WakeupReaper's does: the loop notes a
    child's PID right after the fork, before it can look at the wakeup pipe again,
    so no exit is seen before its PID is known.
    """

    name = "own"
    summary = "waits for each child it forked, by PID (as subprocess, libuv do); never for orphans"
    meaning = (
        "the main loop waits for each child it forked, by PID, as applications do:"
        " orphans handed to it (as PID 1) are never waited for"
    )

    def __init__(self) -> None:
        self._children: set[int] = set()
        self.note_child = self._children.add

    def install(self, counters: Counters) -> None:
        signal.signal(signal.SIGCHLD, _do_nothing)

    def on_sigchld_wakeup(self, counters: Counters) -> None:
        counters.sigchld_handled += 1
        self.collect(counters)

    def collect(self, counters: Counters) -> bool:
        children = self._children
        for pid in tuple(children):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not ours to wait for any more
                children.discard(pid)
                continue
            if done:
                children.discard(pid)
                counters.reaped += 1
        return bool(children)


def _do_nothing(_signum: int, _frame: FrameType | None) -> None:
    """A handler whose only job is to make the kernel interrupt and the wakeup fd fire."""


# The one list of strategies: the server's --reaper, loadtest's scenarios and (through
# scenario.json) the reports all follow it, so a new strategy is a class added here.
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (LoopReaper, NoReaper, SingleReaper, IgnoreReaper, WakeupReaper, OwnReaper)
}
