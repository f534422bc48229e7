"""The few /proc facts the event recorder needs, standard library only.

The recorder must run where nothing but the standard library is (an unprivileged
user's system Python, a container), so it does not go through proctable (psutil).
Unlike proctable it keeps a process's start time in clock ticks, as the kernel
counts it, because that is what tells a child from a newer process that took its
PID. A process that is gone reads as None or an empty set, never as an error: a
child may be reaped between any two reads.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from diagnostics.clocks import boot_time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TICK_NS = 1_000_000_000 // CLOCK_TICKS
_GONE = (errno.ENOENT, errno.ESRCH, errno.ENOTDIR)


@dataclass(frozen=True, slots=True)
class Stat:
    """What /proc/PID/stat says of one process."""

    state: str
    ppid: int
    start_ticks: int
    """Clock ticks from boot to its start (CLOCK_BOOTTIME, taken as it forked)."""
    exit_status: int
    """The waitpid() status a zombie holds; 0 for a live process, and 0 to a reader
    the kernel does not let see it."""

    @property
    def zombie(self) -> bool:
        return self.state == "Z"

    @property
    def started(self) -> float:
        """Start time in unix seconds, to the clock tick."""
        return boot_time() + self.start_ticks / CLOCK_TICKS


def _read(path: str) -> bytes | None:
    """A whole /proc file, or None if its process is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        if error.errno in _GONE:
            return None
        raise
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as error:
        if error.errno in _GONE:
            return None
        raise
    finally:
        os.close(fd)


def stat(pid: int) -> Stat | None:
    """/proc/PID/stat, or None if the process is gone (reaped)."""
    data = _read(f"/proc/{pid}/stat")
    if not data:
        return None
    # The command (field 2) may hold spaces and parentheses: fields follow the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return Stat(
        state=fields[0].decode(),
        ppid=int(fields[1]),
        start_ticks=int(fields[19]),
        exit_status=int(fields[49]) if len(fields) > 49 else 0,
    )


def children(pid: int) -> set[int]:
    """Direct children of every thread of ``pid`` (zombies included); empty if it is gone."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError as error:
        if error.errno in _GONE:
            return set()
        raise
    kids: set[int] = set()
    for tid in threads:
        data = _read(f"/proc/{pid}/task/{tid}/children")
        if data:
            kids.update(map(int, data.split()))
    return kids


COMMAND_CHARS = 200
"""A command is cut to this length: enough to name it, and every child of a tree carries
its parent's, so a long one (a ``python -c`` script) would fill the record."""


def command(pid: int) -> str | None:
    """The command line as ps shows it (runs of white space as one space, at most
    :data:`COMMAND_CHARS` characters), [comm] when it has none; None if gone."""
    data = _read(f"/proc/{pid}/cmdline")
    if data is None:
        return None
    if text := command_text(data):
        return text
    comm = _read(f"/proc/{pid}/comm")
    return None if comm is None else f"[{comm.decode(errors='replace').strip()}]"


def command_text(arguments: bytes) -> str | None:
    """A command line's arguments (NUL-separated, as /proc/PID/cmdline has them) as ps
    shows them; None where there are none."""
    text = " ".join(arguments.decode(errors="replace").replace("\0", " ").split())
    if not text:
        return None
    return text if len(text) <= COMMAND_CHARS else text[: COMMAND_CHARS - 1] + "\u2026"


def owner(pid: int) -> int | None:
    """The user a process runs as (its /proc directory's owner); None if gone."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def free_pids() -> int | None:
    """PIDs the kernel can still hand out: pid_max less the tasks that exist (threads and
    zombies hold one each); None where the kernel does not say."""
    try:
        pid_max = int(_read("/proc/sys/kernel/pid_max") or b"")
        tasks = int((_read("/proc/loadavg") or b"").split()[3].split(b"/")[1])
    except (ValueError, IndexError):
        return None
    return max(0, pid_max - 1 - tasks)
