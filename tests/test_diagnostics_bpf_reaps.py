"""The BPF reap probe on real processes: each wait call that reaps is one reap, stamped
by the kernel between the moments before and after it; a wait that reaps nothing is none."""

from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from diagnostics.bpf_reaps import ReapProbe, ReapProbeUnavailable
from tests import diag_helpers as h


@pytest.fixture
def probe() -> Iterator[ReapProbe]:
    try:
        opened = ReapProbe.open()
    except ReapProbeUnavailable as reason:
        pytest.skip(str(reason))
    try:
        yield opened
    finally:
        opened.close()


def child(code: int = 0) -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(code)
    return pid


def mine(probe: ReapProbe) -> dict[int, list[tuple[int, int, int | None]]]:
    """This process's reaps since the last read: PID -> [(at, reaper, status)]."""
    found: dict[int, list[tuple[int, int, int | None]]] = {}
    for at, pid, reaper, status in probe.read():
        if reaper == os.getpid():
            found.setdefault(pid, []).append((at, reaper, status))
    return found


def test_a_waitpid_is_one_reap_stamped_while_it_ran_with_the_status_it_returned(
    probe: ReapProbe,
) -> None:
    pid = child(3)
    before = time.monotonic_ns()
    _, status = os.waitpid(pid, 0)
    after = time.monotonic_ns()
    [(at, reaper, seen)] = mine(probe)[pid]
    assert before <= at <= after
    assert (reaper, seen, os.WEXITSTATUS(status)) == (os.getpid(), status, 3)


def test_a_waitid_is_a_reap_with_its_status_and_a_wnowait_look_is_none(probe: ReapProbe) -> None:
    pid = child(4)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # looks, leaves the zombie
    assert pid not in mine(probe)
    os.waitid(os.P_PID, pid, os.WEXITED)
    [(_, _, status)] = mine(probe)[pid]
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 4


def test_a_stopped_child_reported_is_not_reaped_and_its_death_by_signal_is(
    probe: ReapProbe,
) -> None:
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGSTOP)
        os._exit(0)
    _, stopped = os.waitpid(pid, os.WUNTRACED)
    assert os.WIFSTOPPED(stopped)
    assert pid not in mine(probe)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    [(_, _, status)] = mine(probe)[pid]
    assert status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_a_wait_without_a_status_pointer_is_a_reap_of_unknown_status(probe: ReapProbe) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    pid = child(5)
    assert libc.waitpid(pid, None, 0) == pid
    [(_, _, status)] = mine(probe)[pid]
    assert status is None


def test_an_orphan_is_reaped_by_the_subreaper_that_adopted_it(probe: ReapProbe) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper, pr_get_child_subreaper = 36, 37
    was = ctypes.c_int(0)
    assert libc.prctl(pr_get_child_subreaper, ctypes.byref(was), 0, 0, 0) == 0
    assert libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0
    try:
        told, tell = os.pipe()  # the grandchild's PID, from the middle process
        cue, go = os.pipe()  # the grandchild waits until no one holds ``go``
        middle = os.fork()
        if middle == 0:  # forks a grandchild that outlives it, tells its PID, exits
            grandchild = os.fork()
            if grandchild == 0:
                os.close(go)
                os.read(cue, 1)
                os._exit(7)
            os.write(tell, grandchild.to_bytes(4, "little"))
            os._exit(0)
        os.close(tell)
        os.close(cue)
        grandchild = int.from_bytes(os.read(told, 4), "little")
        os.close(told)
        os.waitpid(middle, 0)
        os.close(go)  # the grandchild's cue
        _, status = os.waitpid(grandchild, 0)  # adopted: ours to reap
        reaps = mine(probe)
        assert [reaper for _, reaper, _ in reaps[grandchild]] == [os.getpid()]
        assert os.WEXITSTATUS(status) == 7
    finally:  # as it was (pytest's plugin may have made this process a subreaper)
        libc.prctl(pr_set_child_subreaper, was.value, 0, 0, 0)


def test_a_burst_is_every_reap_once_and_none_lost(probe: ReapProbe) -> None:
    pids = [child(n % 256) for n in range(500)]
    for pid in pids:
        os.waitpid(pid, 0)
    reaps = mine(probe)
    assert all(len(reaps.get(pid, [])) == 1 for pid in pids)
    assert probe.lost == 0


def test_reaps_with_no_room_in_the_ring_are_counted_lost() -> None:
    """A one-page ring holds a few dozen records: of 500 reaps not read in time, those
    read and those counted lost make up every one. (The ring is the machine's: under
    other tests' forks it may hold none of these, so none read is no failure.)"""
    try:
        small = ReapProbe.open(ring_bytes=mmap.PAGESIZE)
    except ReapProbeUnavailable as reason:
        pytest.skip(str(reason))
    try:
        pids = [child() for _ in range(500)]
        for pid in pids:
            os.waitpid(pid, 0)
        read = mine(small)
        assert len(read) < len(pids)  # the ring had no room for them all
        assert small.lost >= len(pids) - len(read)  # and each one missing is counted
    finally:
        small.close()


def test_without_privilege_it_says_why_in_one_line() -> None:
    h.require_nobody()
    code = (
        "from diagnostics.bpf_reaps import ReapProbe, ReapProbeUnavailable\n"
        "try:\n    ReapProbe.open()\nexcept ReapProbeUnavailable as e:\n    print(e)\n"
    )
    said = subprocess.run(
        [*h.AS_NOBODY, h.SYSTEM_PYTHON, "-c", code], cwd=h.REPO, capture_output=True, text=True,
        timeout=30, check=True,
    )  # fmt: skip
    assert said.stdout.count("\n") == 1 and "root" in said.stdout, said.stdout + said.stderr


def kernel_reaped_child(flags: int, handler: int) -> tuple[int, int]:
    """(parent, child): a parent whose SIGCHLD action is ``handler`` with ``flags`` forks a
    child that exits with 9, waits until the kernel has reaped it (waitpid finds no child
    left: ECHILD), and exits."""
    read_end, write_end = os.pipe()
    parent = os.fork()
    if parent == 0:
        os.close(read_end)
        set_sigchld(handler, flags)
        pid = child(9)
        os.write(write_end, pid.to_bytes(4, "little"))
        try:
            os.waitpid(pid, 0)  # blocks until it is gone, then ECHILD: nothing to reap
        except ChildProcessError:
            pass
        os._exit(0)
    os.close(write_end)
    pid = int.from_bytes(os.read(read_end, 4), "little")
    os.close(read_end)
    os.waitpid(parent, 0)
    return parent, pid


def set_sigchld(handler: int, flags: int) -> None:
    """sigaction(SIGCHLD) through the C library (Python's signal module sets no flags)."""

    class SigAction(ctypes.Structure):
        _fields_ = [
            ("handler", ctypes.c_void_p),
            ("mask", ctypes.c_ulong * 16),
            ("flags", ctypes.c_int),
            ("restorer", ctypes.c_void_p),
        ]

    action = SigAction(handler=handler, flags=flags)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.sigaction(signal.SIGCHLD, ctypes.byref(action), None) == 0


@pytest.mark.parametrize(
    ("handler", "flags"),
    [(signal.SIG_IGN, 0), (signal.SIG_DFL, 2)],  # 2: SA_NOCLDWAIT
    ids=["sigchld-ignored", "sa-nocldwait"],
)
def test_a_child_the_kernel_reaps_at_its_exit_is_one_reap_for_its_parent(
    probe: ReapProbe, handler: int, flags: int
) -> None:
    parent, pid = kernel_reaped_child(flags, int(handler))
    [(reaper, status)] = [(r, s) for _, p, r, s in probe.read() if p == pid]
    assert reaper == parent
    assert status is not None and os.WEXITSTATUS(status) == 9


def test_a_child_whose_parent_waits_is_no_kernel_reap(probe: ReapProbe) -> None:
    pid = child(6)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # a zombie now, not reaped
    assert pid not in mine(probe)
    os.waitpid(pid, 0)
    assert len(mine(probe)[pid]) == 1


def test_reaps_told_in_a_pid_namespace_of_their_own_are_left_out_and_their_reaper_named(
    probe: ReapProbe,
) -> None:
    """Inside its own PID namespace a wait call returns the namespace's PIDs, which name
    other processes on the machine: those reaps are not taken, and their reaper is named."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    inside = "import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)\n"
    ran = subprocess.run(
        ["unshare", "--pid", "--fork", sys.executable, "-c", inside],
        capture_output=True,
        timeout=30,
    )
    if ran.returncode != 0:
        pytest.skip(f"no PID namespace here: {ran.stderr.decode().strip()}")
    reaps = probe.read()
    assert probe.namespaced, "the reaper inside the namespace is named"
    assert not [reap for reap in reaps if reap[2] in probe.namespaced]


def test_each_exec_is_told_with_its_command_line(probe: ReapProbe) -> None:
    ran = subprocess.run(["/usr/bin/true", "one", "two  words"], check=True)
    assert ran.returncode == 0
    probe.read()
    assert "/usr/bin/true one two words" in [line for _, _, line in probe.commands]
