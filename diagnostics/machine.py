"""Facts about the machine a run happened on, and how many PIDs are left to spend.

Zombies hold PIDs; a harness that makes them on purpose has to know how many it
may make before fork() starts failing for everyone on the machine.
"""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

import psutil

from diagnostics.proctable import read_int


def machine_info() -> dict[str, Any]:
    """What run.json records about the machine (keys: python, kernel, cpus, pid_max,
    platform, hostname, plus threads_max and pid_headroom where known).
    """
    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "pid_max": read_int("/proc/sys/kernel/pid_max"),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "threads_max": read_int("/proc/sys/kernel/threads-max"),
        "pid_headroom": pid_headroom(),
    }


def task_count() -> int:
    """Tasks (threads included: each holds a PID) that exist now, zombies included."""
    try:
        # /proc/loadavg: "0.07 0.06 0.02 1/85 3657" -> 85 tasks, without a scan.
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, ValueError, IndexError):  # no /proc: count the slow way
        return sum(p.info["num_threads"] or 1 for p in psutil.process_iter(["num_threads"]))


def pid_headroom() -> int:
    """How many more tasks can be created before fork() fails: the tightest of pid_max
    (PIDs run from 1 to pid_max - 1), kernel.threads-max and the pids cgroup's
    pids.max, minus what exists now. Limits that cannot be read are skipped;
    with none readable the answer is 32768 - 1 - tasks (Linux's default pid_max).
    """
    tasks = task_count()
    pid_max = read_int("/proc/sys/kernel/pid_max") or 32768
    limits = [pid_max - 1 - tasks]
    threads_max = read_int("/proc/sys/kernel/threads-max")
    if threads_max is not None:
        limits.append(threads_max - tasks)
    cgroup = _pids_cgroup()
    if cgroup is not None:
        limits.append(cgroup[0] - cgroup[1])
    return max(0, min(limits))


def _pids_cgroup() -> tuple[int, int] | None:
    """(pids.max, pids.current) of this process's pids cgroup, v2 or v1; None if
    there is none or it is unlimited.
    """
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
        elif "pids" in controllers.split(","):
            base = Path("/sys/fs/cgroup/pids") / path.lstrip("/")
        else:
            continue
        limit = read_int(str(base / "pids.max"))  # "max" (unlimited) reads as None
        current = read_int(str(base / "pids.current"))
        if limit is not None and current is not None:
            return limit, current
    return None
