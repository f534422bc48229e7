"""How many more tasks a process may create before fork() fails, and which limit stops it.

fork() (and pthread_create: every thread is a task with a PID) fails with EAGAIN at the
first of four limits a new task would exceed. Zombies count against all of them until
their parent reaps them, which is how a leak ends: not with an error, but with every
fork on the machine, or in the container, failing.

- **pids.max** of the task's pids cgroup and of every ancestor: each counts the tasks of
  its whole subtree (``pids.current``), zombies included. This is a container's pids
  limit, systemd's ``TasksMax`` (``DefaultTasksMax`` on every unit), Kubernetes'
  ``podPidsLimit``. cgroup v1 (a ``pids`` hierarchy) and v2 are both read.
- **kernel.pid_max**: PIDs run from 1 to pid_max - 1, so at most pid_max - 1 tasks.
  Once the allocator has wrapped it skips PIDs below 300, so the real ceiling can be up
  to 299 lower; this module does not guess that part.
- **kernel.threads-max**: tasks on the machine.
- **RLIMIT_NPROC** ("Max processes" in /proc/PID/limits): tasks whose real uid is the
  process's real uid. The kernel does not apply it to root or to a process holding
  CAP_SYS_ADMIN or CAP_SYS_RESOURCE, and it can never be the first reached while it is
  at least pid_max - 1 (the user's tasks are among the machine's): then it is left out
  rather than counted, because counting means reading every process's status file.

The use of pid_max and threads-max is the kernel's count of tasks (``/proc/loadavg``);
a cgroup's is its ``pids.current``; RLIMIT_NPROC's is counted from ``/proc/*/status``.
Each :class:`Limit` names the files it came from. Everything here is read as the
calling process sees it (its mount and PID namespaces); user namespaces, which give
RLIMIT_NPROC a count per namespace, are not looked into.

Standard library only, so that any command (``doctor``, the exporter, the harness) can
use it without pulling in the rest of the package.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Kind = Literal["pids.max", "pid_max", "threads-max", "RLIMIT_NPROC"]

PROC = Path("/proc")
LOADAVG = "/proc/loadavg"
PID_MAX = "/proc/sys/kernel/pid_max"
THREADS_MAX = "/proc/sys/kernel/threads-max"
CAP_SYS_ADMIN = 21
CAP_SYS_RESOURCE = 24
_EXEMPT_CAPS = (1 << CAP_SYS_ADMIN) | (1 << CAP_SYS_RESOURCE)


@dataclass(frozen=True, slots=True)
class Limit:
    """One ceiling on the number of tasks, and how much of it is in use now."""

    kind: Kind
    value: int
    """The most tasks it allows: the next fork fails once ``used`` has reached it."""
    used: int
    """Tasks counted against it now (zombies included)."""
    scope: str
    """What it counts: "host", "cgroup /system.slice/app.service", "uid 1000"."""
    source: str
    """The files it was read from, so a figure can be checked by hand."""
    fork_failures: int | None = None
    """For a pids cgroup level, the ``max`` line of its ``pids.events`` (what that counts:
    :attr:`PidsCgroup.fork_failures`)."""

    @property
    def key(self) -> tuple[str, str]:
        """What identifies this limit from one reading to the next (to follow its use)."""
        return self.kind, self.scope

    @property
    def headroom(self) -> int:
        """Tasks that can still be created before a fork fails."""
        return max(0, self.value - self.used)

    def seconds_left(self, rate_per_s: float) -> float:
        """Seconds until ``used`` reaches ``value`` if it grows by ``rate_per_s`` a second;
        infinity when it does not grow."""
        if self.headroom == 0:
            return 0.0
        return self.headroom / rate_per_s if rate_per_s > 0 else math.inf


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit that applies to a process (or to the host), and those that do not."""

    limits: tuple[Limit, ...]
    not_applied: dict[str, str] = field(default_factory=dict)
    """Limits left out, with the reason: {"RLIMIT_NPROC": "root is exempt"}."""
    cgroup: PidsCgroup | None = None
    """The process's pids cgroup; None for the host, or where no hierarchy has the pids
    controller."""

    def tightest(self) -> Limit:
        """The limit with the least headroom (the first listed among equals)."""
        return min(self.limits, key=lambda limit: limit.headroom)

    def first_reached(self, rate_of: Callable[[Limit], float | None]) -> tuple[Limit, float | None]:
        """The limit reached first, and in how many seconds, given each limit's growth.

        ``rate_of`` gives a limit's growth in tasks per second, or None where it is not
        known yet. While any rate is unknown, which limit comes first is unknown too:
        the answer is then the tightest limit and None seconds.
        """
        timed = []
        for limit in self.limits:
            rate = rate_of(limit)
            if rate is None:
                return self.tightest(), None
            timed.append((limit.seconds_left(rate), limit.headroom, limit))
        seconds, _, limit = min(timed, key=lambda entry: entry[:2])
        return limit, seconds


def host_limits() -> Limits:
    """pid_max and threads-max, with the number of tasks on the machine.

    Raises OSError when /proc cannot be read (not Linux).
    """
    tasks = task_count()
    limits = [
        Limit("pid_max", _read_int(PID_MAX) - 1, tasks, "host", f"{PID_MAX}, {LOADAVG}"),
        Limit("threads-max", _read_int(THREADS_MAX), tasks, "host", f"{THREADS_MAX}, {LOADAVG}"),
    ]
    return Limits(tuple(limits))


def process_limits(
    pid: int,
    host: Limits | None = None,
    hierarchy: Hierarchy | None = None,
    tasks: Callable[[], Counter[int]] | None = None,
) -> Limits:
    """Every limit that stops a fork of ``pid``: its pids cgroups, the host's, RLIMIT_NPROC.

    ``host`` (from :func:`host_limits`), ``hierarchy`` (from :func:`pids_hierarchy`) and
    ``tasks`` (see :func:`nproc_limit`) save reading them again when several processes
    are looked at together. Raises FileNotFoundError (or ProcessLookupError) when the
    process is gone, PermissionError when its files may not be read.
    """
    host = host or host_limits()
    cgroup = pids_cgroup(pid, hierarchy)
    not_applied: dict[str, str] = {}
    if cgroup is None:
        not_applied["pids.max"] = "no pids cgroup"
    elif not cgroup.limits:
        not_applied["pids.max"] = f"no pids.max set on {cgroup.path} or above"
    nproc = nproc_limit(pid, host, tasks)
    if isinstance(nproc, str):
        not_applied["RLIMIT_NPROC"] = nproc
    limits = (
        *(cgroup.limits if cgroup else ()),
        *host.limits,
        *(() if isinstance(nproc, str) else (nproc,)),
    )
    return Limits(limits, not_applied, cgroup)


def task_count() -> int:
    """Tasks on the machine now, threads and zombies included: the kernel's own count
    (the fourth field of /proc/loadavg, "running/total"), without a scan."""
    with open(LOADAVG, "rb") as f:
        return int(f.read().split()[3].split(b"/")[1])


# ------------------------------------------------------------------ pids cgroups


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """A mounted cgroup hierarchy that has the pids controller."""

    version: int
    root: str
    """The cgroup shown at the mount point (not "/" inside a cgroup namespace or container)."""
    mountpoint: Path

    def directory(self, cgroup: str) -> Path | None:
        """Where ``cgroup`` (a path from /proc/PID/cgroup) is under this mount; None when
        it lies outside what the mount shows."""
        relative = os.path.relpath(cgroup, self.root)
        if relative == ".":
            return self.mountpoint
        if relative.startswith(".."):
            return None
        return self.mountpoint / relative


def pids_hierarchy(mountinfo: str = "/proc/self/mountinfo") -> Hierarchy | None:
    """The pids hierarchy as this process sees it: v1's ``pids`` mount when there is one
    (the controller is then bound to it), otherwise the v2 mount; None without either."""
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return None
    return next(iter(pids_mounts(lines)), None)


def pids_mounts(mountinfo_lines: list[str]) -> list[Hierarchy]:
    """The v1 mounts bound to the pids controller and the v2 mounts, v1 first: where pids
    is bound to v1, v2 cannot have it."""
    found = []
    for line in mountinfo_lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mountpoint = _unescape(fields[3]), Path(_unescape(fields[4]))
        if tail[0] == "cgroup" and "pids" in tail[2].split(","):
            found.append(Hierarchy(1, root, mountpoint))
        elif tail[0] == "cgroup2":
            found.append(Hierarchy(2, root, mountpoint))
    return sorted(found, key=lambda hierarchy: hierarchy.version)


def cgroup_of(pid: int, hierarchy: Hierarchy) -> str | None:
    """The cgroup of ``pid`` in ``hierarchy`` (from /proc/PID/cgroup); None if it has none.

    Raises FileNotFoundError (or ProcessLookupError) when the process is gone.
    """
    for line in (PROC / str(pid) / "cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if hierarchy.version == 1 and "pids" in controllers.split(","):
            return path
        if hierarchy.version == 2 and controllers == "":
            return path
    return None


@dataclass(frozen=True, slots=True)
class PidsCgroup:
    """A process's pids cgroup: the limits on it and above, and its refused forks."""

    path: str
    """As /proc/PID/cgroup names it."""
    directory: Path | None
    """Where it is mounted; None when it lies outside what the mount shows."""
    limits: tuple[Limit, ...]
    """Each level that sets pids.max, innermost first."""
    fork_failures: int | None
    """The ``max`` count of its ``pids.events``; None where there is none (the root
    cgroup, or a cgroup outside the mount). What it counts depends on the hierarchy
    (kernel/cgroup/pids.c): on cgroup v1, forks refused to tasks of this cgroup,
    whichever level's limit refused them; on v2, times this cgroup's limit or one below
    it refused a fork (a refusal by an ancestor's limit is counted at the ancestor)."""


def pids_cgroup(pid: int, hierarchy: Hierarchy | None = None) -> PidsCgroup | None:
    """The pids cgroup of ``pid``; None where no hierarchy has the pids controller.

    Walks up from the process's cgroup to the top of the mount, reading ``pids.max``
    (unlimited levels are skipped) and ``pids.current`` at each level; the root cgroup
    has neither. Raises FileNotFoundError (or ProcessLookupError) when the process is gone.
    """
    hierarchy = hierarchy or pids_hierarchy()
    cgroup = None if hierarchy is None else cgroup_of(pid, hierarchy)
    if hierarchy is None or cgroup is None:
        return None
    own = hierarchy.directory(cgroup)
    if own is None:
        return PidsCgroup(cgroup, None, (), None)
    limits = []
    directory, path = own, cgroup
    while True:
        limit = _cgroup_limit(directory, path)
        if limit is not None:
            limits.append(limit)
        if directory == hierarchy.mountpoint:
            return PidsCgroup(cgroup, own, tuple(limits), _events_max(own / "pids.events"))
        directory, path = directory.parent, os.path.dirname(path)


def _cgroup_limit(directory: Path, cgroup: str) -> Limit | None:
    """The limit of one cgroup level; None where it is unlimited or has no pids files."""
    value = _cgroup_int(directory / "pids.max")  # "max": no limit
    used = _cgroup_int(directory / "pids.current")
    if value is None or used is None:
        return None
    return Limit(
        "pids.max",
        value,
        used,
        f"cgroup {cgroup}",
        f"{directory}/pids.max, pids.current",
        _events_max(directory / "pids.events"),
    )


def _events_max(path: Path) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "max" and value.strip().isdigit():
            return int(value)
    return None


# ------------------------------------------------------------------ RLIMIT_NPROC


def nproc_limit(
    pid: int, host: Limits, tasks: Callable[[], Counter[int]] | None = None
) -> Limit | str:
    """RLIMIT_NPROC of ``pid`` with its user's task count, or why it does not apply.

    ``tasks`` counts every user's tasks (:func:`tasks_by_user` by default); a caller
    looking at several processes at once passes one that counts once. Raises
    FileNotFoundError (or ProcessLookupError) when the process is gone.
    """
    status = _status_fields(pid)
    uid = int(status["Uid"].split()[0])
    soft = _nproc_soft(pid)
    if soft is None:
        return "unlimited"
    if uid == 0:
        return "root is exempt"
    if int(status.get("CapEff", "0"), 16) & _EXEMPT_CAPS:
        return "exempt: holds CAP_SYS_ADMIN or CAP_SYS_RESOURCE"
    pid_max = next((limit for limit in host.limits if limit.kind == "pid_max"), None)
    if pid_max is not None and soft >= pid_max.value:
        return f"{soft:,} cannot be reached before pid_max ({pid_max.value + 1:,})"
    return Limit(
        "RLIMIT_NPROC",
        soft,
        (tasks or tasks_by_user)()[uid],
        f"uid {uid}",
        f"/proc/{pid}/limits, /proc/*/status",
    )


def _nproc_soft(pid: int) -> int | None:
    """The soft "Max processes" limit; None when unlimited."""
    for line in (PROC / str(pid) / "limits").read_text().splitlines():
        if line.startswith("Max processes"):
            soft = line[len("Max processes") :].split()[0]
            return None if soft == "unlimited" else int(soft)
    return None


def tasks_by_user() -> Counter[int]:
    """Tasks (threads included) per real uid: what RLIMIT_NPROC counts, for every user at
    once. Reads the status file of every process; those that vanish meanwhile are skipped.
    """
    counts: Counter[int] = Counter()
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        try:
            status = _status_fields(int(name))
            counts[int(status["Uid"].split()[0])] += int(status["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return counts


def _status_fields(pid: int) -> dict[str, str]:
    fields = {}
    for line in (PROC / str(pid) / "status").read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


# ------------------------------------------------------------------ reading


def _read_int(path: str) -> int:
    with open(path, "rb") as f:
        return int(f.read())


def _cgroup_int(path: Path) -> int | None:
    """An integer cgroup file; None where it is missing or says "max"."""
    try:
        return int(path.read_bytes())
    except (OSError, ValueError):
        return None


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    return text.encode().decode("unicode_escape") if "\\" in text else text
