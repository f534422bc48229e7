"""Exceptions of the diagnostics package, shaped like psutil's.

Callers need to tell "the process is gone" (stop quietly) from "I may not look"
(say so) from a bug, so each failure has its own class. ``ZombieProcess`` is a
``NoSuchProcess``: a zombie has no memory, threads or descriptors left to observe,
so for an observer it is as gone as a reaped process.
"""

from __future__ import annotations


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
