"""Helpers for the diagnostics tests: bounded waits, an independent oracle (psutil),
and helper programs for the cases bench.holder does not cover.

Nothing here sleeps and hopes: waits poll a condition until a deadline, then the
test asserts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench.holder import end_by_stdin as end_by_stdin
from tests.waiting import DEADLINE_S as DEADLINE_S
from tests.waiting import wait_until as wait_until

REPO = Path(__file__).resolve().parent.parent


def others_can_read(path: Path) -> bool:
    """Whether a user with none of our rights (nobody) can read ``path``: every folder on
    the way searchable by others, and ``path`` readable (a clone in ``mktemp -d`` is not)."""
    folders = [path, *path.parents]
    return bool(path.stat().st_mode & 0o004) and all(f.stat().st_mode & 0o001 for f in folders)


NOBODY_CANNOT_READ = f"user nobody cannot read {REPO} (a folder on the way is private)"
SYSTEM_PYTHON = "/usr/bin/python3"
"""A Python any user can run (the project's venv may be in a private folder)."""
AS_NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def require_nobody() -> None:
    """Skip unless a process of user nobody can be started here and read the project
    (``[*AS_NOBODY, SYSTEM_PYTHON, ...]``)."""
    if shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs setpriv and a system python3 that user nobody can run")
    if os.geteuid() != 0:
        pytest.skip("needs root to become nobody")
    if not others_can_read(REPO):
        pytest.skip(NOBODY_CANNOT_READ)


MISSING_PID = 4_194_305  # above the largest pid_max Linux allows: never a process


def oracle_counts(pid: int) -> tuple[int, int]:
    """(alive, zombies) among the direct children of ``pid``, the slow psutil way."""
    alive = zombies = 0
    for child in psutil.Process(pid).children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies += 1
            else:
                alive += 1
        except psutil.NoSuchProcess:
            continue
    return alive, zombies


def spawn(code: str, *args: str) -> subprocess.Popen[bytes]:
    """A Python helper process whose lifetime the test controls through its stdin."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )


def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``python -m diagnostics ARGS`` as a user runs it."""
    return run_cli_module("diagnostics", *args, timeout=timeout)


def run_cli_module(
    module: str, *args: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` from the repository, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


# A parent that keeps forking short-lived children and reaping them by PID (at most
# 20 outstanding), in itself and in one live child, around a stable core of 5 zombies
# and 3 live children that it never touches. It prints "ready" once the core is in
# place, and on stdin EOF stops, reaps everything and exits.
CHURN = r"""
import os, sys, threading

STOP = threading.Event()

def churn():
    pending = []
    while not STOP.is_set():
        if len(pending) < 20:
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            pending.append(pid)
        else:
            os.waitpid(pending.pop(0), 0)
    reap_all()

def reap_all():
    while True:
        try:
            os.wait()
        except ChildProcessError:
            os._exit(0)

def stop_on_eof():
    sys.stdin.buffer.read()
    STOP.set()

def live_child():
    sys.stdin.buffer.read()
    os._exit(0)

stable = []
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    stable.append(pid)
for _ in range(3):
    if os.fork() == 0:
        live_child()
if os.fork() == 0:  # the middle: churns grandchildren
    threading.Thread(target=stop_on_eof, daemon=True).start()
    churn()
for pid in stable:
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
threading.Thread(target=stop_on_eof, daemon=True).start()
print("ready", flush=True)
churn()
"""

# Sets its own command name to something ps would show as "we) ird (x" and waits.
ODD_COMM = r"""
import sys
with open("/proc/self/comm", "w") as f:
    f.write("we) ird (x")
print("ready", flush=True)
sys.stdin.buffer.read()
"""

# Records PID argv[1] into CSV argv[2] until killed; prints "started" once running.
RECORD = r"""
import sys, threading
from pathlib import Path
from diagnostics.recorder import Recorder
rec = Recorder(int(sys.argv[1]), Path(sys.argv[2]), interval=0.01)
rec.start()
print("started", flush=True)
threading.Event().wait()
"""
