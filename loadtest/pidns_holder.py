"""Run a command as PID 1 of a new PID namespace, with a /proc of its own: the part of
a container runtime that makes zombies behave as they do in a container.

    python -I pidns_holder.py COMMAND [ARG...]     run it; exit with its status
    python -I pidns_holder.py --check              exit 0 if this machine lets us, else
                                                   print why in one line and exit 125

This process, the holder, stays outside the namespace, where its caller can see and
signal it. ``unshare(CLONE_NEWPID)`` moves only the children made afterwards into the
new namespace, so the holder unshares, then forks: that child is PID 1 there. A new
mount namespace comes with it, where PID 1 mounts a fresh /proc before it becomes the
command, so that the command sees the namespace's processes under their namespace PIDs
(a PID 1 reading the host's /proc/1 would read the host's init).

The holder forwards the signals that ask a process to stop (SIGTERM, SIGINT, SIGHUP,
SIGQUIT) to PID 1 and exits with PID 1's status (128 + N when signal N ended it, as a
shell says). It dies, PID 1 dies (PR_SET_PDEATHSIG SIGKILL), and when PID 1 of a
namespace dies the kernel kills every process left in it: nothing outlives the holder.
A PID 1 ignores every signal it has no handler for, even SIGTERM from outside its
namespace; only SIGKILL always works, and that is what ends a command that does not
stop on SIGTERM (the caller kills the holder, the kernel does the rest). When the
caller itself is gone (the harness killed outright: its SIGTERM reaches the holder
through PR_SET_PDEATHSIG), nobody is left to do that: the holder then gives PID 1
ORPHANED_GRACE seconds after the signal it forwarded, and kills it, as ``docker stop``
does after its grace period.

Standard library only, and no import of the project: it runs with ``python -I``
before anything else of the harness is there, as the start-up guard of
loadtest.processes does. Python 3.11 has no ``os.unshare``: libc's is called.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 1 << 14, 1 << 18
PR_SET_PDEATHSIG = 1
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
EXIT_CANNOT = 125
"""The holder could not make the namespace (as env(1) and unshare(1) say it)."""
EXIT_NOT_FOUND = 127
ORPHANED_GRACE = 10
"""Seconds PID 1 has to stop after a forwarded signal once the holder's caller is gone."""
CHECK = "--check"
SAYS = "pidns_holder: "
"""How each line the holder writes begins (its caller strips it)."""


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    return libc


def _fail(what: str) -> str:
    return f"{what}: {os.strerror(ctypes.get_errno())}"


def unshare(libc: ctypes.CDLL) -> str | None:
    """Enter new PID (for the children to come) and mount namespaces; why not, or None."""
    if libc.unshare(CLONE_NEWPID | CLONE_NEWNS) != 0:
        return _fail("cannot make a new PID namespace (it needs root: CAP_SYS_ADMIN)")
    return None


def become_pid1(libc: ctypes.CDLL, holder_gone: int, argv: list[str]) -> None:
    """In the forked child, PID 1 of the namespace: tie its life to the holder's, mount
    the namespace's /proc, become the command. Does not return."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([holder_gone], [], [], 0)[0]:  # the holder died before the line above
        os._exit(EXIT_CANNOT)
    # Private first, so that the new /proc is not propagated back to the host's mounts.
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        _die(_fail("cannot make the mounts private"), EXIT_CANNOT)
    if libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
        _die(_fail("cannot mount the namespace's /proc"), EXIT_CANNOT)
    try:
        os.execvp(argv[0], argv)
    except OSError as error:
        _die(f"cannot run {argv[0]}: {error.strerror}", EXIT_NOT_FOUND)


def _die(message: str, code: int) -> None:
    os.write(2, f"{SAYS}{message}\n".encode())
    os._exit(code)


def main(argv: list[str]) -> int:
    if not argv:
        _die(f"usage: pidns_holder.py {CHECK} | COMMAND [ARG...]", 2)
    libc = _libc()
    problem = unshare(libc)
    if problem is not None:
        _die(problem, EXIT_CANNOT)
    if argv == [CHECK]:
        return 0
    # Both ends close on exec; PID 1 keeps the read end only until it execs. Its
    # end reads as ready (end of file) once no writer is left: the holder is gone.
    holder_gone, holder_alive = os.pipe()
    pid1 = os.fork()
    if pid1 == 0:
        os.close(holder_alive)
        become_pid1(libc, holder_gone, argv)
    os.close(holder_gone)
    caller = os.getppid()

    def forward(signum: int, _frame: object) -> None:
        os.kill(pid1, signum)
        if os.getppid() != caller:  # orphaned: nobody will kill a PID 1 deaf to it
            signal.alarm(ORPHANED_GRACE)

    signal.signal(signal.SIGALRM, lambda _signum, _frame: os.kill(pid1, signal.SIGKILL))
    for signum in FORWARDED:
        signal.signal(signum, forward)
    _pid, status = os.waitpid(pid1, 0)  # a forwarded signal does not end it (PEP 475)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
