"""The record of a process tree's children, built from the kernel's events, and read back.

:class:`ChildTree` follows the WHOLE tree under a root: a fork by any member adds a
child (a grandchild orphaned and handed to a subreaper or init stays in the tree, as
its own children do), an exit marks it, a reap ends it. Threads are not children:
a fork event whose child is a thread (pid != tgid) is left out, and a process has
exited when its last thread has. The tree decides; it does no I/O: the recorder
feeds it events and the facts it read in /proc, and writes the rows it hands back.

Times are CLOCK_MONOTONIC nanoseconds, the connector's clock, until a row is made
(:meth:`Child.record` puts them on the samples' clock, unix seconds).

:func:`read` is how every reader takes events.csv in.
"""

from __future__ import annotations

import csv
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from diagnostics import contract
from diagnostics.clocks import boot_time
from diagnostics.contract import ChildRecord
from diagnostics.procfs import CLOCK_TICKS


@dataclass(slots=True)
class Child:
    """One child as the recorder knows it so far (times: monotonic ns)."""

    pid: int
    parent: int
    depth: int
    command: str
    origin: str
    seen_ns: int
    forked_ns: int | None = None
    start_ticks: int | None = None
    """Its start in clock ticks, as /proc gives it; None if not read (a child whose pidfd
    was opened right after its fork needs no other proof of who it is)."""
    exited_ns: int | None = None
    exit_source: str = ""
    exit_status: int | None = None
    """The raw waitpid() status; None where it could not be read."""
    reaped_ns: int | None = None
    reap_source: str = ""
    reaped_by: int | None = None
    adopted_by: int | None = None
    adopted_ns: int | None = None
    up: Child | None = None
    """Its holder's own record while the holder is a child of the tree (None: the root,
    or an adopter outside the tree)."""
    pidfd: int | None = None
    exit_seen_ns: int | None = None
    """When its pidfd turned readable (the exit, as the poller saw it)."""
    holder: int = 0
    """Its parent now: whoever adopted it, else whoever forked it (set by the tree)."""

    def csv_line(self, offset_ns: int) -> str:
        """Its row of events.csv, its times moved to unix seconds by ``offset_ns`` (unix -
        monotonic).

        Made for every child of the busiest trees, in the recorder's thread (a third of
        what the recorder spends on a child under load): plain expressions, no helper
        calls for the times, and no :class:`ChildRecord` made on the way (it would be
        read by no one; the row's cells go by position to the one line format)."""
        forked = None if self.forked_ns is None else (self.forked_ns + offset_ns) / 1e9
        exited = None if self.exited_ns is None else (self.exited_ns + offset_ns) / 1e9
        reaped = None if self.reaped_ns is None else (self.reaped_ns + offset_ns) / 1e9
        adopted = None if self.adopted_ns is None else (self.adopted_ns + offset_ns) / 1e9
        status = self.exit_status
        code, killer = (0, None) if status == 0 else _decode(status)  # most exit 0
        started = forked  # the kernel stamps the start just before the fork event
        if self.start_ticks is not None:
            started = boot_time() + self.start_ticks / CLOCK_TICKS
        return contract.event_line(
            self.pid, started, self.parent, self.depth, self.command, self.origin,
            (self.seen_ns + offset_ns) / 1e9, forked, exited, self.exit_source, code, killer,
            reaped, self.reap_source, self.reaped_by, self.adopted_by, adopted,
        )  # fmt: skip


def _decode(status: int | None) -> tuple[int | None, str | None]:
    """(exit code, signal name) of a waitpid() status."""
    if status is None:
        return None, None
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return None, signal.Signals(number).name
        except ValueError:
            return None, f"signal {number}"
    return (os.WEXITSTATUS(status), None) if os.WIFEXITED(status) else (None, None)


@dataclass(frozen=True, slots=True)
class TreeCounts:
    """The tree's running counts at one moment (see :class:`ChildTree`), for a live view
    and for deciding when a server has settled; taken from another thread while the
    recorder's goes on, so two of them may be a few events apart."""

    live: int
    zombies: int
    deeper_live: int
    deeper_zombies: int
    peak_zombies: int
    forks: int
    exits: int
    reaps: int
    last_exit_ns: int
    last_change_ns: int


@dataclass(slots=True)
class ChildTree:
    """The children of ``root``'s tree: those not yet reaped, and the rows of those done."""

    root: int
    root_command: str
    active: dict[int, Child] = field(default_factory=dict)
    """Children not yet reaped, by PID: with the root, the tree's members now."""
    done: list[Child] = field(default_factory=list)
    """Children reaped since :meth:`take_done` last emptied it."""
    root_exited_ns: int | None = None
    live: int = 0
    """Children alive now, at every depth (exact where the sources are)."""
    zombies: int = 0
    """Children exited and not yet reaped now, at every depth."""
    deeper_live: int = 0
    """Of ``live``, grandchildren and deeper."""
    deeper_zombies: int = 0
    """Of ``zombies``, grandchildren and deeper."""
    peak_zombies: int = 0
    """The most zombies at once so far, at every depth."""
    forks: int = 0
    """Children whose fork was seen."""
    exits: int = 0
    """Children seen to exit (not those that were zombies already when first seen)."""
    reaps: int = 0
    last_exit_ns: int = 0
    """The latest exit seen, at every depth (0: none)."""
    last_change_ns: int = 0
    """The latest fork, exit or reap seen (0: none)."""
    _kids: dict[int, set[int]] = field(default_factory=dict)
    """Holder -> its children in the tree, so an exit finds the orphans it makes."""

    def counts(self) -> TreeCounts:
        return TreeCounts(
            live=self.live,
            zombies=self.zombies,
            deeper_live=self.deeper_live,
            deeper_zombies=self.deeper_zombies,
            peak_zombies=self.peak_zombies,
            forks=self.forks,
            exits=self.exits,
            reaps=self.reaps,
            last_exit_ns=self.last_exit_ns,
            last_change_ns=self.last_change_ns,
        )

    def is_member(self, pid: int) -> bool:
        """Whether ``pid`` is in the tree now (the root's PID stops counting once it exits)."""
        return pid in self.active or (pid == self.root and self.root_exited_ns is None)

    def add(
        self,
        pid: int,
        parent: int,
        origin: str,
        seen_ns: int,
        *,
        forked_ns: int | None = None,
        command: str | None = None,
    ) -> Child:
        """A new child of member ``parent``: forked (its event seen) or found in /proc."""
        above = self.active.get(parent)
        child = Child(
            pid=pid,
            parent=parent,
            depth=1 if above is None else above.depth + 1,
            command=command or (self.root_command if above is None else above.command),
            origin=origin,
            seen_ns=seen_ns,
            forked_ns=forked_ns,
            up=above,
            holder=parent,
        )
        self.active[pid] = child
        self._hold(parent, pid)
        self._count(child, 1, 0)
        if origin == contract.FORKED:
            self.forks += 1
        self.last_change_ns = max(self.last_change_ns, seen_ns if forked_ns is None else forked_ns)
        return child

    def exited(self, child: Child, at_ns: int, source: str, status: int | None) -> None:
        """``child`` exited at ``at_ns`` (from ``source``); a better source may correct it."""
        if child.exited_ns is None and child.exit_source != contract.EXIT_BEFORE_SEEN:
            self._count(child, -1, 1)
            self.exits += 1
        if at_ns > self.last_exit_ns:
            self.last_exit_ns = at_ns
        if at_ns > self.last_change_ns:
            self.last_change_ns = at_ns
        child.exited_ns, child.exit_source = at_ns, source
        if status is not None:
            child.exit_status = status

    def found_zombie(self, child: Child, status: int | None) -> None:
        """``child`` was already a zombie when first seen: its exit time is not known."""
        self._count(child, -1, 1)
        child.exit_source, child.exit_status = contract.EXIT_BEFORE_SEEN, status

    def revived(self, child: Child) -> None:
        """An exec by a non-leader thread: the leader's "exit" was the exec taking its place."""
        if child.exited_ns is not None:
            self._count(child, 1, -1)
            self.exits -= 1
        child.exited_ns, child.exit_source, child.exit_status = None, "", None

    def reaped(self, child: Child, at_ns: int, source: str) -> None:
        """``child`` is gone: by ``at_ns`` (see ``source``); its row is ready."""
        if child.exited_ns is None and child.exit_source != contract.EXIT_BEFORE_SEEN:
            self._count(child, -1, 0)
        else:
            self._count(child, 0, -1)
        self.reaps += 1
        if at_ns > self.last_change_ns:
            self.last_change_ns = at_ns
        child.reaped_ns, child.reap_source = at_ns, source
        child.reaped_by = self._reaper(child, at_ns)
        del self.active[child.pid]
        self._let_go(child)
        self.done.append(child)

    def _reaper(self, child: Child, at_ns: int) -> int | None:
        """Its holder, unless the holder had exited by ``at_ns``: then an adopter the
        recorder could not name reaped it (None), not the holder."""
        if child.holder == self.root:
            exited = self.root_exited_ns
        elif child.up is None:
            return child.holder  # an adopter outside the tree, read in /proc
        elif child.up.exit_source == contract.EXIT_BEFORE_SEEN:
            return None
        else:
            exited = child.up.exited_ns
        return child.holder if exited is None or exited > at_ns else None

    def adopted(self, child: Child, adopter: int, at_ns: int) -> None:
        """``child`` has ``adopter`` for its parent since ``at_ns`` (its own parent died)."""
        if adopter == child.holder:
            return
        self._let_go(child)
        child.adopted_by, child.adopted_ns, child.holder = adopter, at_ns, adopter
        child.up = self.active.get(adopter)
        self._hold(adopter, child.pid)

    def _count(self, child: Child, live: int, zombies: int) -> None:
        self.live += live
        self.zombies += zombies
        if child.depth > 1:
            self.deeper_live += live
            self.deeper_zombies += zombies
        if self.zombies > self.peak_zombies:
            self.peak_zombies = self.zombies

    def _hold(self, holder: int, pid: int) -> None:
        kids = self._kids.get(holder)
        if kids is None:
            self._kids[holder] = {pid}
        else:
            kids.add(pid)

    def _let_go(self, child: Child) -> None:
        """``child`` is no longer its holder's (reaped, or handed on)."""
        kids = self._kids.get(child.holder)
        if kids is not None:
            kids.discard(child.pid)
            if not kids:
                del self._kids[child.holder]

    def orphans_of(self, pid: int) -> list[Child]:
        """The children ``pid`` held when it exited: the kernel has handed them on."""
        return [self.active[kid] for kid in self._kids.get(pid, ()) if kid in self.active]

    def take_done(self) -> list[Child]:
        done, self.done = self.done, []
        return done

    def __iter__(self) -> Iterator[Child]:
        return iter(list(self.active.values()))


def read(path: Path) -> tuple[list[ChildRecord], list[str]]:
    """events.csv as records, and a note for each row that could not be read (left out).

    Raises OSError when the file cannot be read, ValueError when it is not an events
    file (its header lacks columns); a row cut short by a crash is one note.
    """
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = [
            name
            for name in contract.EVENT_COLUMNS
            if name not in (reader.fieldnames or ()) and name not in contract.OPTIONAL_EVENT_COLUMNS
        ]
        if missing:
            raise ValueError(f"{path.name} lacks the columns {', '.join(missing)}")
        rows: list[ChildRecord] = []
        notes: list[str] = []
        for number, row in enumerate(reader, start=1):
            try:
                rows.append(ChildRecord.from_csv(row))
            except (ValueError, TypeError) as error:
                notes.append(f"{path.name} row {number} left out: {error}")
    return rows, notes
