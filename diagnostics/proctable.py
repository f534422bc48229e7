"""The few process-table facts the sampler and the doctor need, read cheaply.

Why not psutil for this part: ``psutil.Process.children()`` reads the stat file of
every process on the machine at every call, which is what made sampling cost grow
with the number of zombies. Linux lists a task's direct children itself in
``/proc/PID/task/TID/children`` (zombies included until they are reaped), so a
table lookup here costs one read per thread of the parent. Where that file is
missing (kernels without CONFIG_PROC_CHILDREN) we scan ``/proc/*/stat`` once per
table, and where ``/proc`` is missing (macOS) we ask psutil.

A :class:`ProcTable` is a view of the table for one sample. Callers ask it for
``children(pid)`` and ``stat(pid)`` without caring which backend answers.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import threading
from dataclasses import dataclass
from typing import Literal, Protocol

import psutil

from diagnostics.errors import AccessDenied, NoSuchProcess, os_call

Backend = Literal["auto", "children", "scan", "psutil"]

HAS_PROC = os.path.isdir("/proc/self/task")
HAS_CHILDREN_FILES = HAS_PROC and os.path.exists(
    f"/proc/self/task/{threading.get_native_id()}/children"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# psutil status strings -> the one-letter states of /proc/PID/stat and ps(1).
_PSUTIL_STATES = {
    psutil.STATUS_RUNNING: "R",
    psutil.STATUS_SLEEPING: "S",
    psutil.STATUS_DISK_SLEEP: "D",
    psutil.STATUS_STOPPED: "T",
    psutil.STATUS_TRACING_STOP: "t",
    psutil.STATUS_ZOMBIE: "Z",
    psutil.STATUS_DEAD: "X",
    psutil.STATUS_IDLE: "I",
}


@dataclass(frozen=True, slots=True)
class ProcStat:
    """One process as the table sees it.

    ``started`` (unix seconds) together with ``pid`` identifies a process: a PID is
    recycled after its owner is reaped, a start time is not. ``exit_status`` is the
    raw waitpid() status a zombie is waiting to hand to its parent (field 52 of
    /proc/PID/stat); the kernel shows 0 to readers without ptrace rights, and it is
    ``None`` where the platform does not expose it.
    """

    pid: int
    state: str
    ppid: int
    started: float
    exit_status: int | None
    threads: int | None = None
    cpu_seconds: float | None = None
    """User plus system CPU time so far (None where the backend does not read it)."""
    rss_bytes: int | None = None
    session: int | None = None
    """The session ID (as this /proc numbers it; 0 when the leader is outside its PID
    namespace). A child starts in its parent's session: diagnostics.whoreaps reads
    from it whether a zombie was forked by the parent that holds it."""

    @property
    def zombie(self) -> bool:
        """True when the process has exited and waits for its parent to reap it."""
        return self.state == "Z"


class ProcTable(Protocol):
    """Children and stat of processes, as of (roughly) one moment."""

    def children(self, pid: int) -> set[int]:
        """PIDs of the direct children of ``pid`` (zombies included)."""
        ...

    def stat(self, pid: int) -> ProcStat:
        """State, parent and identity of ``pid``."""
        ...


def read_proc_file(path: str, pid: int, *, one_line: bool = False) -> bytes:
    """Whole content of a /proc file, with the OS errors turned into ours.

    os.open/os.read rather than open(): these files are tiny, read thousands of
    times a second, and the buffered-IO layer would be most of the cost. A
    ``one_line`` file is complete once a read ends with a newline, which saves
    the read that would only find the end of the file.
    """
    fd = os_call(pid, lambda: os.open(path, os.O_RDONLY))
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            if one_line and chunk.endswith(b"\n"):
                break
    except OSError as exc:  # ESRCH: the process went away between open and read
        if exc.errno == errno.ESRCH:
            raise NoSuchProcess(pid) from None
        raise
    finally:
        os.close(fd)
    return b"".join(chunks)


@functools.cache
def boot_time() -> float:
    """Unix time of boot, the origin of the start times in /proc/PID/stat.

    Read once: /proc/stat's btime is the wall clock minus the time since boot, cut to
    whole seconds, so it moves by a second when the wall clock is stepped or slewed
    across a boundary (psutil reads it afresh each time). A start time is half of a
    process's identity: two reads of one process must give the same one."""
    return psutil.boot_time()


def parse_stat(pid: int, data: bytes) -> ProcStat:
    """Parse /proc/PID/stat.

    The command name (field 2) is in parentheses and may itself contain spaces and
    parentheses, so the fields after it are found after the LAST ')'.
    """
    fields = data[data.rindex(b")") + 2 :].split()
    # fields[0] is field 3 of proc(5): state, ppid (4), session (6), utime (14),
    # stime (15), num_threads (20), starttime (22), rss (24, pages), exit_code (52).
    return ProcStat(
        pid=pid,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        started=boot_time() + int(fields[19]) / CLOCK_TICKS,
        exit_status=int(fields[49]) if len(fields) > 49 else None,
        threads=int(fields[17]),
        cpu_seconds=(int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        rss_bytes=int(fields[21]) * PAGE_SIZE,
        session=int(fields[3]),
    )


def read_stat(pid: int) -> ProcStat:
    """Stat of one process from /proc."""
    return parse_stat(pid, read_proc_file(f"/proc/{pid}/stat", pid, one_line=True))


def list_dir(path: str, pid: int) -> list[str]:
    """Entries of a /proc directory, with the OS errors turned into ours."""
    return os_call(pid, lambda: os.listdir(path))


def task_children(pid: int) -> set[int]:
    """Direct children of every thread of ``pid``, from the kernel's own lists.

    Each thread has its own list (a child belongs to the thread that forked it), so
    this is the union over /proc/PID/task/*. A thread that exits while we read is
    skipped; its children move to a sibling thread. The kernel builds the file a
    page at a time, so a child that exits mid-read can be skipped or repeated; the
    set removes repeats and the next sample sees what was skipped.
    """
    kids: set[int] = set()
    for tid in list_dir(f"/proc/{pid}/task", pid):
        try:
            kids |= thread_children(pid, tid)
        except NoSuchProcess:
            continue
    return kids


def thread_children(pid: int, tid: int | str) -> set[int]:
    """Direct children forked by one thread ``tid`` of ``pid``."""
    return set(map(int, read_proc_file(f"/proc/{pid}/task/{tid}/children", pid).split()))


class KernelTable:
    """Backend reading the kernel's per-thread children lists; cost follows the parent.

    One per sample. It remembers the processes its ``stat`` saw with a single
    thread: their children are then one file to read (the main thread's list)
    rather than a directory to list first, which is most of what a live child
    costs a sample.
    """

    def __init__(self) -> None:
        self._single_threaded: set[int] = set()

    def children(self, pid: int) -> set[int]:
        if pid in self._single_threaded:
            try:
                return thread_children(pid, pid)
            except NoSuchProcess:
                pass  # the main thread is gone (pthread_exit): ask every thread left
        return task_children(pid)

    def stat(self, pid: int) -> ProcStat:
        st = read_stat(pid)
        if st.threads == 1:
            self._single_threaded.add(pid)
        return st


class SnapshotTable:
    """Backend over a snapshot of the whole table (the fallbacks; cost follows the machine)."""

    def __init__(self, stats: dict[int, ProcStat]) -> None:
        self._stats = stats
        self._kids: dict[int, set[int]] = {}
        for st in stats.values():
            self._kids.setdefault(st.ppid, set()).add(st.pid)

    def children(self, pid: int) -> set[int]:
        if pid not in self._stats:
            raise NoSuchProcess(pid)
        return set(self._kids.get(pid, ()))

    def stat(self, pid: int) -> ProcStat:
        try:
            return self._stats[pid]
        except KeyError:
            raise NoSuchProcess(pid) from None


def scan_proc() -> dict[int, ProcStat]:
    """Stat of every process in /proc. Processes that vanish or hide are left out."""
    stats: dict[int, ProcStat] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stats[int(name)] = read_stat(int(name))
            except (NoSuchProcess, AccessDenied):
                continue
    return stats


def scan_psutil() -> dict[int, ProcStat]:
    """Stat of every process, through psutil, for platforms without /proc."""
    stats: dict[int, ProcStat] = {}
    for proc in psutil.process_iter(["ppid", "status", "create_time"]):
        info = proc.info
        if info["ppid"] is None or info["status"] is None or info["create_time"] is None:
            continue  # psutil fills None where it was denied
        state = _PSUTIL_STATES.get(info["status"], "?")
        stats[proc.pid] = ProcStat(proc.pid, state, info["ppid"], info["create_time"], None)
    return stats


def open_table(backend: Backend = "auto") -> ProcTable:
    """A table view for one sample. "auto" picks the cheapest backend this machine has."""
    if backend == "auto":
        backend = "children" if HAS_CHILDREN_FILES else "scan" if HAS_PROC else "psutil"
    if backend == "children":
        return KernelTable()
    if backend == "scan":
        return SnapshotTable(scan_proc())
    return SnapshotTable(scan_psutil())


def scan_all() -> dict[int, ProcStat]:
    """Every process on the machine, from the best source available."""
    return scan_proc() if HAS_PROC else scan_psutil()


class PidClock:
    """Which PIDs the kernel may have handed out since the last look.

    The sampler trusts a PID it already knows as a zombie child without re-reading
    it: a zombie cannot change, and its PID cannot name another process until it is
    reaped AND allocated again. /proc/sys/kernel/ns_last_pid tells where the
    allocator stands, so between two looks only PIDs in (last, now] (cyclically)
    can have been allocated again; those few are re-read. A full wrap of the PID
    space between two looks (pid_max forks in one interval) cannot be seen.
    Without the file, the clock says nothing and cached zombies are trusted.
    """

    def __init__(self) -> None:
        self._last = read_int("/proc/sys/kernel/ns_last_pid")

    def advance(self) -> tuple[int, int] | None:
        """Move to now; return (after, upto): PIDs allocated since, or None if unknown."""
        now = read_int("/proc/sys/kernel/ns_last_pid")
        last, self._last = self._last, now
        if now is None or last is None:
            return None
        return last, now


def allocated_between(pid: int, window: tuple[int, int]) -> bool:
    """True if ``pid`` lies in the cyclic range (after, upto] of a :class:`PidClock`."""
    after, upto = window
    if after <= upto:
        return after < pid <= upto
    return pid > after or pid <= upto


def read_int(path: str) -> int | None:
    """An integer from a one-value kernel file, or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def decode_exit_status(status: int) -> str:
    """A waitpid() status as people say it: "0", "1", or the signal name ("SIGKILL")."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return signal.Signals(number).name
        except ValueError:
            return f"signal {number}"
    if os.WIFEXITED(status):
        return str(os.WEXITSTATUS(status))
    return f"status {status:#x}"
