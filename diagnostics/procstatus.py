"""What /proc/PID/status and /proc/PID/cmdline say about a parent: SIGCHLD handling,
namespace, command line. The doctor needs these; the sampler does not.
"""

from __future__ import annotations

import signal
from typing import Literal

import psutil

from diagnostics.errors import NoSuchProcess, psutil_call
from diagnostics.proctable import HAS_PROC, list_dir, read_proc_file

Disposition = Literal["default", "ignored", "caught", "blocked"]
Action = Literal["default", "ignored", "caught"]
"""What a SIGCHLD does when delivered, whether or not it is blocked."""

SIGCHLD_MASK = 1 << (signal.SIGCHLD - 1)  # bit 17 on Linux, counted from 1


def read_status(pid: int, path: str | None = None) -> dict[str, str]:
    """Fields of /proc/PID/status (or of a thread's status file at ``path``)."""
    text = read_proc_file(path or f"/proc/{pid}/status", pid).decode(errors="replace")
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _has_sigchld(mask_hex: str) -> bool:
    return bool(int(mask_hex, 16) & SIGCHLD_MASK)


def sigchld_disposition(pid: int) -> Disposition | None:
    """How ``pid`` handles SIGCHLD; None where /proc is missing.

    Precedence, from what decides whether zombies pile up:
    1. "ignored" (SIG_IGN in SigIgn): the kernel reaps children itself, whatever the
       masks say, so nothing else matters.
    2. "blocked": SIGCHLD is in SigBlk of EVERY thread, so no handler can run (a
       process may still reap with sigwaitinfo/signalfd or a polling loop). If one
       thread leaves it unblocked, the signal is delivered there.
    3. "caught": a handler is installed (SigCgt).
    4. "default": nothing is done on SIGCHLD; only explicit waits reap.
    SA_NOCLDWAIT (which also makes the kernel reap) is not visible in /proc.
    """
    handling = sigchld_handling(pid)
    if handling is None:
        return None
    action, blocked = handling
    if action != "ignored" and blocked:
        return "blocked"
    return action


def sigchld_handling(pid: int) -> tuple[Action, bool] | None:
    """(what a SIGCHLD does, whether it is blocked on every thread): the two facts that
    sigchld_disposition folds into one word. None where /proc is missing."""
    if not HAS_PROC:
        return None
    status = read_status(pid)
    if _has_sigchld(status["SigIgn"]):
        action: Action = "ignored"
    elif _has_sigchld(status["SigCgt"]):
        action = "caught"
    else:
        action = "default"
    return action, _blocked_on_every_thread(pid, status)


def _blocked_on_every_thread(pid: int, status: dict[str, str]) -> bool:
    masks = []
    for tid in list_dir(f"/proc/{pid}/task", pid):
        try:
            masks.append(read_status(pid, f"/proc/{pid}/task/{tid}/status")["SigBlk"])
        except NoSuchProcess:
            continue  # the thread exited while we looked
    return all(_has_sigchld(mask) for mask in masks or [status["SigBlk"]])


def namespace_pid(pid: int) -> int | None:
    """The PID the process has in its own (innermost) PID namespace; 1 means it is that
    namespace's init, which inherits every orphan. None when the kernel does not say.
    """
    nspids = namespace_pids(pid)
    return nspids[-1] if nspids else None


def namespace_pids(pid: int) -> tuple[int, ...]:
    """The process's PID in each PID namespace it is in, from the one this /proc belongs
    to inward (``NSpid``); empty when the kernel does not say."""
    if not HAS_PROC:
        return ()
    return tuple(int(n) for n in read_status(pid).get("NSpid", "").split())


def cmdline(pid: int) -> str:
    """The command line as ps shows it: arguments joined by spaces, or [comm] when empty
    (kernel threads, zombies).
    """
    if not HAS_PROC:
        proc = psutil_call(pid, lambda: psutil.Process(pid))
        return psutil_call(pid, lambda: " ".join(proc.cmdline()) or f"[{proc.name()}]")
    args = read_proc_file(f"/proc/{pid}/cmdline", pid).rstrip(b"\0").split(b"\0")
    text = " ".join(arg.decode(errors="replace") for arg in args)
    if text:
        return text
    comm = read_proc_file(f"/proc/{pid}/comm", pid).decode(errors="replace").strip()
    return f"[{comm}]"
