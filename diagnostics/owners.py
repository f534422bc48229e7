"""Who in this process will reap a child: the object a zombie belongs to.

A zombie of this process is not an observer's to reap when something in the
process will: the ``subprocess.Popen`` that started it (its ``wait``/``poll``),
a ``multiprocessing`` process or pool worker (its ``join``, the pool's clean-up
at exit). Reaping behind their back makes them wrong: a Popen whose child is
gone reports exit status 0 (ECHILD), and multiprocessing believes a reaped
worker alive and at exit sends SIGTERM to its PID, which by then may name
another process.

Where to look, in order (the first that answers wins):

1. the Popen of the child's spawn record (diagnostics.spawns keeps a weak
   reference to it);
2. ``subprocess._active``: Popens collected while their child ran, which
   subprocess reaps at the next Popen;
3. ``multiprocessing.process._children``: every Process started and not yet
   joined, pool workers included; and multiprocessing's own helpers, the
   forkserver and the resource tracker, kept for the life of the process;
4. last resort, for a child without a spawn record (started before the check
   was on, or through a reference the wrappers do not see): the garbage
   collector's list of every object, for a Popen with that PID. The walk costs
   tens of milliseconds in a large process, so only such a zombie pays it.

Only modules already imported are asked: a process that never imported
multiprocessing owns no multiprocessing child.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from diagnostics.spawns import SpawnRecord


@dataclass(frozen=True)
class Owner:
    """The object that will reap a child, as a report names it."""

    name: str
    reap: Callable[[], object] | None
    """Reaps the child through the owner's own bookkeeping (it records the exit
    and never signals the PID again); None where the owner does it alone."""
    helper: bool = False
    """multiprocessing's forkserver or resource tracker: kept for the life of the process."""


def find_owner(pid: int, record: SpawnRecord | None, *, zombie: bool) -> Owner | None:
    """The owner of child ``pid``, or None when nothing in the process refers to it.

    ``zombie``: whether to pay for the last resort (a running child is never reaped,
    so its owner only names it in the report).
    """
    popen = record.popen() if record is not None and record.popen is not None else None
    if popen is not None and _owns(popen, pid):
        return Owner("its subprocess.Popen", popen.poll)
    subprocess = sys.modules.get("subprocess")
    if subprocess is not None:
        for active in list(getattr(subprocess, "_active", None) or ()):
            if _owns(active, pid):
                return Owner("subprocess: a Popen collected while its child ran", active.poll)
    owner = _multiprocessing_owner(pid)
    if owner is not None or not zombie or record is not None or subprocess is None:
        return owner
    for obj in _objects_of(subprocess.Popen):
        if _owns(obj, pid):
            return Owner("a subprocess.Popen (found by the garbage collector)", obj.poll)
    return None


def _owns(popen: Any, pid: int) -> bool:
    """A Popen (or multiprocessing's) that has this child and has not collected it."""
    return (
        popen is not None
        and getattr(popen, "pid", None) == pid
        and getattr(popen, "returncode", 0) is None
    )


def _multiprocessing_owner(pid: int) -> Owner | None:
    process = sys.modules.get("multiprocessing.process")
    for proc in list(getattr(process, "_children", None) or ()):
        if _owns(getattr(proc, "_popen", None), pid):
            return Owner(f"multiprocessing's {type(proc).__name__} {proc.name!r}", _exitcode(proc))
    helpers = (
        ("multiprocessing.forkserver", "_forkserver", "_forkserver_pid", "forkserver"),
        ("multiprocessing.resource_tracker", "_resource_tracker", "_pid", "resource tracker"),
    )
    for module_name, instance, attribute, what in helpers:
        helper = getattr(sys.modules.get(module_name), instance, None)
        if helper is not None and getattr(helper, attribute, None) == pid:
            return Owner(f"multiprocessing, its {what}", None, helper=True)
    return None


def _exitcode(proc: Any) -> Callable[[], object]:
    return lambda: proc.exitcode  # the property polls, and records what it reaps


def _objects_of(kind: type) -> Iterable[Any]:
    return (obj for obj in gc.get_objects() if isinstance(obj, kind))
