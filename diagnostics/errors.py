"""Exceptions of the diagnostics package, shaped like psutil's.

Callers need to tell "the process is gone" (stop quietly) from "I may not look"
(say so) from a bug, so each failure has its own class. ``ZombieProcess`` is a
``NoSuchProcess``: a zombie has no memory, threads or descriptors left to observe,
so for an observer it is as gone as a reaped process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


class DiagnosticsError(Exception):
    """Base class of every error this package raises on purpose."""


class NoSuchProcess(DiagnosticsError):
    """The process does not exist (any more), or its PID now names another process."""

    def __init__(self, pid: int, msg: str | None = None) -> None:
        self.pid = pid
        super().__init__(msg or f"no process with PID {pid}")


class ZombieProcess(NoSuchProcess):
    """The process has exited and waits to be reaped; nothing is left to observe."""

    def __init__(self, pid: int, msg: str | None = None) -> None:
        super().__init__(pid, msg or f"PID {pid} is a zombie (exited, not reaped)")


class AccessDenied(DiagnosticsError):
    """The process exists but this user may not read what was asked."""

    def __init__(self, pid: int, msg: str | None = None) -> None:
        self.pid = pid
        super().__init__(msg or f"permission denied reading PID {pid}")


def os_call(pid: int, call: Callable[[], T]) -> T:
    """Run an OS call on /proc/PID, with the errors that mean "gone" or "not allowed" as ours."""
    try:
        return call()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        raise NoSuchProcess(pid) from None
    except PermissionError:
        raise AccessDenied(pid) from None


def psutil_call(pid: int, call: Callable[[], T]) -> T:
    """Run a psutil call, translating its exceptions into ours."""
    try:
        return call()
    except psutil.ZombieProcess:
        raise ZombieProcess(pid) from None
    except psutil.NoSuchProcess:
        raise NoSuchProcess(pid) from None
    except psutil.AccessDenied:
        raise AccessDenied(pid) from None
