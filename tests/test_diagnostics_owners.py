"""diagnostics.owners: who in this process will reap a child, on real children; and the
exit status of a zombie read without reaping it (diagnostics.leaks.exit_status)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import warnings
import weakref

from diagnostics.leaks import exit_status
from diagnostics.owners import find_owner
from diagnostics.proctable import read_stat
from diagnostics.spawns import POPEN, SpawnRecord, ThreadNote
from tests.waiting import wait_until

EXIT_3 = [sys.executable, "-c", "raise SystemExit(3)"]
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def wait_for_zombie(pid: int) -> None:
    wait_until(lambda: read_stat(pid).state == "Z", f"PID {pid} to exit")


def test_the_popen_of_the_spawn_record_owns_its_zombie() -> None:
    proc = subprocess.Popen(EXIT_3)
    wait_for_zombie(proc.pid)
    thread = ThreadNote("MainThread", runner=True, known=True, started_during=None)
    record = SpawnRecord(POPEN, (), thread, None, 0, popen=weakref.ref(proc))
    owner = find_owner(proc.pid, record, zombie=True)
    assert owner is not None and owner.name == "its subprocess.Popen"
    assert owner.reap is not None
    owner.reap()
    assert proc.returncode == 3  # reaped by the Popen itself: it knows


def test_without_a_record_the_garbage_collector_finds_the_popen() -> None:
    proc = subprocess.Popen(EXIT_3)
    wait_for_zombie(proc.pid)
    owner = find_owner(proc.pid, None, zombie=True)
    assert owner is not None
    assert owner.name == "a subprocess.Popen (found by the garbage collector)"
    assert proc.wait() == 3


def test_a_running_child_costs_no_walk_of_the_garbage_collector() -> None:
    proc = subprocess.Popen(SLEEP)
    try:
        assert find_owner(proc.pid, None, zombie=False) is None  # never reaped: no need
    finally:
        proc.kill()
        proc.wait()


def test_a_popen_collected_while_its_child_ran_leaves_it_to_subprocess() -> None:
    proc = subprocess.Popen(SLEEP)
    pid = proc.pid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # "subprocess is still running"
        del proc
    (active,) = [popen for popen in subprocess._active if popen.pid == pid]  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)  # our child, unreaped: the PID is still its own
    wait_for_zombie(pid)
    owner = find_owner(pid, None, zombie=True)
    assert owner is not None and owner.name == "subprocess: a Popen collected while its child ran"
    assert owner.reap is not None
    owner.reap()
    assert active.returncode == -signal.SIGKILL


def test_a_multiprocessing_process_owns_its_zombie() -> None:
    process = multiprocessing.get_context("fork").Process(target=sys.exit, args=(4,))
    process.start()
    assert process.pid is not None
    wait_for_zombie(process.pid)
    owner = find_owner(process.pid, None, zombie=True)
    assert owner is not None and owner.name == f"multiprocessing's ForkProcess {process.name!r}"
    assert owner.reap is not None
    owner.reap()
    assert process.exitcode == 4  # recorded by the process object: join() will not wait
    process.join()


def test_nothing_owns_a_bare_fork() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    wait_for_zombie(pid)
    try:
        assert find_owner(pid, None, zombie=True) is None
    finally:
        os.waitpid(pid, 0)


def test_the_exit_status_is_read_and_the_zombie_stays() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    wait_for_zombie(pid)
    try:
        assert exit_status(pid) == "3"
        assert read_stat(pid).state == "Z"  # still there for whoever reaps it
        assert exit_status(pid) == "3"
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3


def test_a_killed_child_s_status_names_the_signal() -> None:
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    wait_for_zombie(pid)
    try:
        assert exit_status(pid) == "SIGKILL"
    finally:
        os.waitpid(pid, 0)


def test_no_status_for_a_running_child_or_a_stranger() -> None:
    proc = subprocess.Popen(SLEEP)
    try:
        assert exit_status(proc.pid) is None
        assert exit_status(os.getppid()) is None  # not our child: ECHILD, nothing reaped
    finally:
        proc.kill()
        proc.wait()
