"""Facts about the machine a run happened on, and how many PIDs are left to spend.

Zombies hold PIDs; a harness that makes them on purpose has to know how many it
may make before fork() starts failing for everyone on the machine.
"""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

import psutil

from diagnostics import limits
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
        return limits.task_count()  # the kernel's own count, without a scan
    except (OSError, ValueError, IndexError):  # no /proc: count the slow way
        return sum(p.info["num_threads"] or 1 for p in psutil.process_iter(["num_threads"]))


def pid_headroom() -> int:
    """How many more tasks this process can create before fork() fails: the headroom of
    the tightest limit that applies to it (:mod:`diagnostics.limits`: the pids cgroups up
    its hierarchy, pid_max, threads-max, RLIMIT_NPROC). Where /proc cannot say, the
    answer is 32768 - 1 - tasks (Linux's default pid_max).
    """
    try:
        return limits.process_limits(os.getpid()).tightest().headroom
    except (OSError, ValueError):
        return max(0, 32768 - 1 - task_count())
