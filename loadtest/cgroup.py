"""The zombie cap, enforced by the kernel: a pids cgroup of its own for each server.

Zombies hold PIDs, and a pids cgroup counts every task in it, zombies included, while its
task list names only the live ones: ``pids.current`` minus the live tasks is the zombies
it holds, as the kernel counts them. With ``pids.max`` set to the cap plus the server's
live tasks (loadtest/cap.py), its fork() fails with EAGAIN at the cap whatever the
sampler or the disk do (the way a container's pids limit or systemd's TasksMax fail).
The server joins the cgroup from its first instruction: the harness's start-up guard
(loadtest/processes.py) writes its own PID into ``cgroup.procs`` before it execs the server.

This lives in loadtest, beside processes.py, because it is process control (it places,
limits and, at the end, kills the harness's own processes); diagnostics only observes.

cgroup v1 (a ``pids`` hierarchy) and v2 (a unified hierarchy whose ``cgroup.controllers``
has ``pids``) are both handled. Where no cgroup can be made (not root, no delegation),
:func:`create` raises :class:`CgroupUnavailable` with the reason, and the harness falls
back to the sampler's stop.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from diagnostics.limits import pids_mounts
from loadtest.processes import send, wait_for
from loadtest.trace import TRACE

PREFIX = "reaperlab-"
MOUNTINFO = Path("/proc/self/mountinfo")
OWN_CGROUPS = Path("/proc/self/cgroup")


class CgroupUnavailable(Exception):
    """No pids cgroup can be made here; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """Where this process's pids cgroup is: a directory we may create children in."""

    version: int
    directory: Path


@dataclass(frozen=True, slots=True)
class PidsCgroup:
    version: int
    path: Path

    @property
    def procs_file(self) -> Path:
        """The file a process writes its PID into to join."""
        return self.path / "cgroup.procs"

    def limit(self, tasks: int) -> None:
        (self.path / "pids.max").write_text(f"{tasks}\n")
        TRACE(f"cgroup {self.path}: pids.max = {tasks}")

    def live(self) -> int | None:
        """Live tasks (threads) in the cgroup now: its task list, which names no zombie
        (v1 ``tasks``, v2 ``cgroup.threads``); None once it is gone."""
        name = "tasks" if self.version == 1 else "cgroup.threads"
        try:
            return len((self.path / name).read_text().split())
        except OSError:
            return None

    def current(self) -> int | None:
        """Tasks in the cgroup now, zombies included (None once it is gone)."""
        return _read_int(self.path / "pids.current")

    def peak(self) -> int | None:
        """The most tasks it ever held (kernels from 6.1; None where not kept)."""
        return _read_int(self.path / "pids.peak")

    def refusals(self) -> int:
        """How many forks the kernel refused at ``pids.max`` (``pids.events``: ``max N``)."""
        try:
            text = (self.path / "pids.events").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "max" and value.strip().isdigit():
                return int(value)
        return 0

    def members(self) -> list[int]:
        """Live processes in it (zombies are counted by pids.current but not listed)."""
        try:
            return [int(pid) for pid in self.procs_file.read_text().split()]
        except (OSError, ValueError):
            return []

    def remove(
        self, reap: Callable[[], object], timeout: float = 10.0
    ) -> tuple[set[int], str | None]:
        """Kill what is left in it, reap, and rmdir it: the PIDs it had to kill, and None or
        why it could not be removed.

        Only processes the harness placed here (and their descendants) can be members,
        so killing them by PID ends nothing else. Zombies hold their place in the cgroup
        until reaped: ``reap`` collects the ones adopted by the harness (a subreaper).
        """
        killed: set[int] = set()

        def emptied() -> bool:
            for pid in self.members():
                send(pid, signal.SIGCONT, "still in the cgroup at the end")
                if send(pid, signal.SIGKILL, "still in the cgroup at the end"):
                    killed.add(pid)
            reap()
            return not self.current()

        emptied_in_time = wait_for(emptied, timeout, interval=0.02)
        try:
            self.path.rmdir()
        except FileNotFoundError:
            return killed, None
        except OSError as error:
            left = "" if emptied_in_time else f" ({self.current()} tasks still in it)"
            return killed, f"could not remove the cgroup {self.path}: {error.strerror}{left}"
        TRACE(f"cgroup {self.path} removed")
        return killed, None


def create(name: str, limit: int, hierarchy: Hierarchy | None = None) -> PidsCgroup:
    """A new pids cgroup ``reaperlab-<harness pid>-<name>`` with ``pids.max`` = ``limit``,
    under this process's own pids cgroup (or ``hierarchy``)."""
    hierarchy = hierarchy or find_hierarchy()
    remove_stale(hierarchy.directory)
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    path = hierarchy.directory / f"{PREFIX}{os.getpid()}-{safe_name}"
    try:
        path.mkdir()
    except OSError as error:
        raise CgroupUnavailable(f"cannot create {path}: {error.strerror}") from None
    cgroup = PidsCgroup(hierarchy.version, path)
    TRACE(f"cgroup {path} made (v{hierarchy.version})")
    try:
        cgroup.limit(limit)
    except OSError as error:
        path.rmdir()
        raise CgroupUnavailable(f"cannot set {path}/pids.max: {error.strerror}") from None
    return cgroup


def remove_stale(directory: Path) -> list[Path]:
    """Remove the empty cgroups of harnesses that no longer run (killed outright: SIGKILL
    leaves no clean-up). rmdir removes only an empty cgroup, so nothing in use is touched.
    """
    removed = []
    for path in directory.glob(f"{PREFIX}*"):
        owner = path.name[len(PREFIX) :].partition("-")[0]
        if not owner.isdigit() or Path(f"/proc/{owner}").exists():
            continue
        try:
            path.rmdir()
        except OSError:
            continue
        removed.append(path)
    return removed


def find_hierarchy(mountinfo: Path = MOUNTINFO, own: Path = OWN_CGROUPS) -> Hierarchy:
    """This process's pids cgroup directory, v1 first (a dedicated controller), then v2."""
    try:
        mounts = mountinfo.read_text().splitlines()
        memberships = own.read_text().splitlines()
    except OSError as error:
        raise CgroupUnavailable(f"cannot read the cgroup tables: {error.strerror}") from None
    paths = {}
    for line in memberships:
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path
    v1_path = next((p for c, p in paths.items() if "pids" in c.split(",")), None)
    for mount in pids_mounts(mounts):
        if mount.version == 1 and v1_path is not None:
            return Hierarchy(1, _inside(mount.mountpoint, mount.root, v1_path))
        if mount.version == 2 and "" in paths:
            directory = _inside(mount.mountpoint, mount.root, paths[""])
            if _v2_pids_ready(directory):
                return Hierarchy(2, directory)
    raise CgroupUnavailable("no pids cgroup controller is mounted for this process")


def _inside(mountpoint: Path, root: str, path: str) -> Path:
    """The directory of cgroup ``path`` under a mount of the hierarchy at ``root``."""
    relative = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return mountpoint if relative == "." else mountpoint / relative


def _v2_pids_ready(directory: Path) -> bool:
    """Whether children of ``directory`` get pids files: pids enabled for its subtree.

    Enabling it fails (EBUSY) in a non-root cgroup that holds processes itself (v2's
    no-internal-process rule): then a delegated, empty cgroup is needed.
    """
    try:
        if "pids" in (directory / "cgroup.subtree_control").read_text().split():
            return True
        if "pids" not in (directory / "cgroup.controllers").read_text().split():
            return False
        (directory / "cgroup.subtree_control").write_text("+pids\n")
        return True
    except OSError:
        return False


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
