"""Sampler: exact counts on real zombies, cache eviction, races, a vanished target."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from bench.holder import HolderSpec, ZombieHolder
from diagnostics import sampler as sampler_module
from diagnostics.contract import SAMPLE_COLUMNS
from diagnostics.errors import NoSuchProcess, ZombieProcess
from diagnostics.proctable import Backend, ProcStat, read_stat
from diagnostics.sampler import Sample, Sampler
from tests import diag_helpers as h
from tests.test_diagnostics_inherited import slow_requests


def test_columns_are_the_contract() -> None:
    assert SAMPLE_COLUMNS == (
        "time",
        "elapsed",
        "children",
        "alive",
        "zombies",
        "descendant_zombies",
        "fds",
        "rss_bytes",
        "cpu_percent",
        "threads",
        "sample_cost_ms",
        "listener_holders",
    )


def test_unknown_figures_are_empty_cells() -> None:
    sample = Sample(1.5, 0.25, 3, 1, 2, 0, None, 4096, None, 1, 0.125)
    assert sample.csv_row() == [
        "1.500000",
        "0.250000",
        "3",
        "1",
        "2",
        "0",
        "",
        "4096",
        "",
        "1",
        "0.1250",
        "",
    ]


def test_exact_counts_of_zombies_live_children_and_deeper_zombies() -> None:
    spec = HolderSpec(exits=[0] * 7, alive=3, middles=[4, 2])
    with ZombieHolder(spec) as holder:
        sampler = Sampler(holder.pid)
        for _ in range(3):  # the first sample reads everything, later ones use the cache
            s = sampler.sample()
            assert (s.children, s.alive, s.zombies, s.descendant_zombies) == (12, 5, 7, 6)
        assert h.oracle_counts(holder.pid) == (5, 7)
        assert s.threads == 1 and s.fds is not None and s.rss_bytes and s.sample_cost_ms > 0
        assert sorted(st.pid for st in sampler.zombie_children()) == sorted(holder.children.zombies)


def test_counts_follow_reaping() -> None:
    """The test process is the parent here, so it decides exactly when zombies go."""
    sampler = Sampler(os.getpid())
    base = sampler.sample()
    pids = []
    try:
        for _ in range(6):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        assert sampler.sample().zombies == base.zombies + 6
        for pid in pids[:4]:
            os.waitpid(pid, 0)
        assert sampler.sample().zombies == base.zombies + 2
        assert sorted(st.pid for st in sampler.zombie_children()) == sorted(pids[4:])
    finally:
        for pid in pids[4:] if len(pids) == 6 else pids:
            os.waitpid(pid, 0)
    assert sampler.sample().zombies == base.zombies


@pytest.mark.parametrize(("backend", "samples"), [("children", 400), ("scan", 60)])
@pytest.mark.slow  # hundreds of samples of a churning tree: 1.5 s each
def test_races_never_crash_and_counts_stay_consistent(backend: Backend, samples: int) -> None:
    """Children exit and are reaped all the time while we sample; around a stable
    core of 5 zombies and 4 live children (3 idle, 1 churning grandchildren).
    """
    proc = h.spawn(h.CHURN)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        sampler = Sampler(proc.pid, backend=backend)
        for _ in range(samples):
            s = sampler.sample()
            assert s.children == s.alive + s.zombies
            assert 5 <= s.zombies <= 25
            assert 4 <= s.alive <= 24
            assert 0 <= s.descendant_zombies <= 20
            assert len(sampler.zombie_children()) == s.zombies
    finally:
        h.end_by_stdin(proc)


def test_vanished_target_raises_no_such_process() -> None:
    holder = ZombieHolder(HolderSpec(alive=1)).start()
    try:
        sampler = Sampler(holder.pid)
        sampler.sample()
    finally:
        holder.release()
    with pytest.raises(NoSuchProcess):
        sampler.sample()


def test_zombie_target_raises_zombie_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        h.wait_until(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE, "the exit")
        with pytest.raises(ZombieProcess):
            Sampler(proc.pid)
    finally:
        proc.wait()


def test_a_cached_zombie_whose_pid_was_allocated_again_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PID recycled into a new child within one interval cannot be made to order on a
    real machine, so this one case runs on a scripted table and PID clock.
    """
    me = read_stat(os.getpid())
    child = 4_000_000
    table = FakeTable(me, {child: ProcStat(child, "Z", me.pid, me.started, 0)})
    windows: list[tuple[int, int] | None] = [None, (child + 5, child + 9), (child - 1, child + 1)]
    monkeypatch.setattr(sampler_module, "open_table", lambda backend: table)
    monkeypatch.setattr(sampler_module.PidClock, "advance", lambda self: windows.pop(0))
    sampler = Sampler(me.pid)
    assert sampler.sample().zombies == 1
    # Reaped and reallocated to a new live child: outside the window, the cache is trusted...
    table.kids[child] = ProcStat(child, "S", me.pid, me.started + 1, None)
    assert sampler.sample().zombies == 1
    # ...within it (the allocator passed that PID), the child is read again.
    sample = sampler.sample()
    assert (sample.zombies, sample.alive) == (0, 1)
    assert sampler.zombie_children() == []


class FakeTable:
    """A scripted ProcTable: the target and its children."""

    def __init__(self, target: ProcStat, kids: dict[int, ProcStat]) -> None:
        self.target = target
        self.kids = kids

    def children(self, pid: int) -> set[int]:
        return set(self.kids) if pid == self.target.pid else set()

    def stat(self, pid: int) -> ProcStat:
        return self.target if pid == self.target.pid else self.kids[pid]


# A parent whose one child has two threads; the second thread forks a child that exits
# and stays a zombie on that thread's own children list until stdin closes.
THREAD_FORKED_ZOMBIE = r"""
import os, sys, threading

forked_r, forked_w = os.pipe()
middle = os.fork()
if middle == 0:
    def fork_a_zombie():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.write(forked_w, b"x")
        sys.stdin.buffer.read()
        os.waitpid(pid, 0)
    thread = threading.Thread(target=fork_a_zombie)
    thread.start()
    thread.join()
    os._exit(0)
os.read(forked_r, 1)
print("ready", flush=True)
sys.stdin.buffer.read()
os.waitpid(middle, 0)
"""


def test_a_zombie_forked_by_a_second_thread_of_a_child_is_counted() -> None:
    parent = h.spawn(THREAD_FORKED_ZOMBIE)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"ready\n"
        sampler = Sampler(parent.pid)
        h.wait_until(lambda: sampler.sample().descendant_zombies == 1, "the grandchild's exit")
        sample = sampler.sample()
        assert (sample.alive, sample.zombies, sample.descendant_zombies) == (1, 0, 1)
    finally:
        h.end_by_stdin(parent)


# Spins one core until stdin closes; a second thread waits for the close.
SPINNER = r"""
import sys, threading
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.buffer.read(), done.set())).start()
print("spinning", flush=True)
while not done.is_set():
    pass
"""


@pytest.mark.parametrize("backend", ["auto", "psutil"])
def test_the_targets_own_figures_agree_with_psutil(backend: Backend) -> None:
    spinner = h.spawn(SPINNER)
    try:
        assert spinner.stdout is not None and spinner.stdout.readline() == b"spinning\n"
        sampler = Sampler(spinner.pid, backend=backend)
        h.wait_until(lambda: (sampler.sample().cpu_percent or 0) >= 50, "a busy CPU percent")
        sample, oracle = sampler.sample(), psutil.Process(spinner.pid)
        assert sample.threads == oracle.num_threads() == 2
        assert sample.fds == oracle.num_fds()
        assert sample.rss_bytes is not None
        assert abs(sample.rss_bytes - oracle.memory_info().rss) <= 0.2 * sample.rss_bytes
    finally:
        h.end_by_stdin(spinner)


@pytest.mark.parametrize("keeps", [False, True])
def test_children_holding_the_listening_socket_are_counted(start_server, keeps: bool) -> None:
    """Our server's children close the listening socket; with the fault every child in
    flight holds it, and the count says so sample by sample."""
    flags = ("--child-keeps-listener",) if keeps else ()
    server = start_server("--work-ms", "60000", *flags)
    sampler = Sampler(server.pid, count_listener_holders=True)
    assert sampler.sample().listener_holders == 0
    conns, children = slow_requests(server, 3)
    try:
        sample = sampler.sample()
        assert sample.alive == 3 and sample.listener_holders == (3 if keeps else 0)
    finally:
        for conn in conns:
            conn.close()


def test_the_server_under_a_shell_is_the_one_whose_listener_is_followed(start_server) -> None:
    """The sampler's target is the shell the harness started; the server below it listens."""
    server = start_server(
        "--work-ms", "60000", "--child-keeps-listener", prefix=("sh", "-c", '"$@"; exit $?', "sh")
    )
    assert server.proc.pid != server.pid  # the shell, and the server it runs
    sampler = Sampler(server.proc.pid, count_listener_holders=True)
    conns, _children = slow_requests(server, 2)
    try:
        sample = sampler.sample()
        assert (sample.descendant_zombies, sample.listener_holders) == (0, 2)
    finally:
        for conn in conns:
            conn.close()


def test_a_target_that_listens_on_nothing_has_no_holders_count() -> None:
    with ZombieHolder(HolderSpec(exits=[0], alive=2)) as holder:
        assert Sampler(holder.pid, count_listener_holders=True).sample().listener_holders is None


def test_the_holders_count_is_asked_for(start_server) -> None:
    """Only the time series (the recorder: the harness and watch) pays for the count."""
    server = start_server("--child-keeps-listener")
    assert Sampler(server.pid).sample().listener_holders is None
