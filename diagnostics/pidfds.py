"""Reap times from pidfds: a pidfd polls readable when its process exits and hangs up
(POLLHUP) when the process is reaped, by its parent or by whoever adopted it.

No other interface tells when a process was reaped: the process-events connector,
exitsnoop and forkstat report exits only. The hang-up at reap came with Linux 6.9
(a pidfd's poll reports POLLHUP once its task is released); older kernels only
report the exit, so :func:`probe` checks it on this kernel with a real child before
a recorder relies on it. No privilege is needed: pidfd_open works on any process.

A pidfd is a descriptor: a recorder watching thousands of zombies holds thousands,
hence :func:`raise_descriptor_limit`.
"""

from __future__ import annotations

import errno
import os
import resource
import select

PROBE_TIMEOUT_S = 2.0
"""A probe child exits and is reaped in microseconds; this bounds a kernel that never says."""

OK = "ok"


def probe() -> str:
    """:data:`OK` when a pidfd turns readable at a child's exit and hangs up at its reap,
    tried on a real child of this process; otherwise one line saying what is missing."""
    if not hasattr(os, "pidfd_open"):
        return "this Python has no os.pidfd_open (3.9+ on Linux 5.3+)"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child waits for its cue, then exits: no Python teardown
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    poller = select.epoll()
    try:
        try:
            fd = os.pidfd_open(pid)
        except OSError as error:
            return f"pidfd_open failed: {error.strerror}"
        try:
            poller.register(fd, select.EPOLLIN)
            os.close(write_end)
            write_end = -1
            if not poller.poll(PROBE_TIMEOUT_S):
                return "a pidfd did not turn readable when its process exited"
            poller.modify(fd, 0)  # from now on, only the hang-up
            _reap(pid)
            if not any(mask & select.EPOLLHUP for _, mask in poller.poll(PROBE_TIMEOUT_S)):
                return "a pidfd does not hang up when its process is reaped (Linux 6.9+ does)"
            return OK
        finally:
            os.close(fd)
    finally:
        poller.close()
        if write_end >= 0:
            os.close(write_end)
        _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # reaped already (by us, or by a handler of this process)


def open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid``; None if no process has that PID any more.

    Raises OSError for anything else (EMFILE: no descriptor to spare).
    """
    try:
        return os.pidfd_open(pid)
    except OSError as error:
        if error.errno in (errno.ESRCH, errno.EINVAL):  # EINVAL: a thread, not a process
            return None
        raise


def reaped(fd: int) -> bool:
    """Whether the process of pidfd ``fd`` has been reaped (its pidfd hangs up)."""
    poller = select.poll()
    poller.register(fd, 0)  # only the hang-up (and errors) are reported
    return any(mask & (select.POLLHUP | select.POLLERR) for _, mask in poller.poll(0))


def raise_descriptor_limit() -> int:
    """Lift this process's soft limit on descriptors to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
