"""The /proc reader against real processes: parsing, children lists, backends."""

from __future__ import annotations

import os
import threading

import psutil
import pytest

from bench.holder import HolderSpec, ZombieHolder
from diagnostics.errors import NoSuchProcess
from diagnostics.proctable import (
    CLOCK_TICKS,
    Backend,
    allocated_between,
    decode_exit_status,
    parse_stat,
    read_proc_file,
    read_stat,
    task_children,
)
from diagnostics.sampler import Sampler
from tests import diag_helpers as h


def test_comm_with_spaces_and_parens_is_parsed_from_the_last_paren() -> None:
    proc = h.spawn(h.ODD_COMM)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        st = read_stat(proc.pid)
        assert psutil.Process(proc.pid).name() == "we) ird (x"
        assert st.ppid == os.getpid()
        assert st.state in "RS"
        assert abs(st.started - psutil.Process(proc.pid).create_time()) <= 1 / CLOCK_TICKS
    finally:
        h.end_by_stdin(proc)


def test_parse_stat_fields() -> None:
    rest = ["0"] * 49  # fields 4..52 of proc(5)
    rest[0], rest[18], rest[48] = "77", "0", "9"
    st = parse_stat(5, b"5 (a) (b) c) Z " + " ".join(rest).encode())
    assert (st.pid, st.state, st.ppid, st.exit_status) == (5, "Z", 77, 9)
    assert st.zombie


def test_missing_process_raises_no_such_process() -> None:
    with pytest.raises(NoSuchProcess):
        read_stat(h.MISSING_PID)
    with pytest.raises(NoSuchProcess):
        task_children(h.MISSING_PID)


def test_children_are_listed_across_threads() -> None:
    """A child belongs to the thread that forked it: the main thread's list misses a
    child forked by another live thread, the union over all threads does not.
    """
    forked: list[int] = []
    release = threading.Event()

    def fork_and_stay() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        forked.append(pid)
        release.wait()

    thread = threading.Thread(target=fork_and_stay)
    thread.start()
    try:
        h.wait_until(lambda: bool(forked), "the thread's fork")
        main_only = read_proc_file(f"/proc/{os.getpid()}/task/{os.getpid()}/children", 0)
        assert str(forked[0]).encode() not in main_only.split()
        assert forked[0] in task_children(os.getpid())
    finally:
        release.set()
        thread.join()
        for pid in forked:
            os.waitpid(pid, 0)


@pytest.mark.parametrize("backend", ["children", "scan", "psutil"])
def test_every_backend_counts_the_same(backend: Backend) -> None:
    with ZombieHolder(HolderSpec(exits=[0, 1, 2], alive=2, middles=[2])) as holder:
        sample = Sampler(holder.pid, backend=backend).sample()
        assert (sample.zombies, sample.alive, sample.descendant_zombies) == (3, 3, 2)


def test_decode_exit_status() -> None:
    assert decode_exit_status(0) == "0"
    assert decode_exit_status(3 << 8) == "3"
    assert decode_exit_status(9) == "SIGKILL"
    assert decode_exit_status(11 | 0x80) == "SIGSEGV"  # with the core-dump bit


def test_zombie_exit_statuses_come_from_stat() -> None:
    with ZombieHolder(HolderSpec(exits=[0, 3, -9])) as holder:
        sampler = Sampler(holder.pid)
        sampler.sample()
        codes = sorted(decode_exit_status(st.exit_status or 0) for st in sampler.zombie_children())
        assert codes == ["0", "3", "SIGKILL"]


def test_allocated_between_is_cyclic() -> None:
    assert allocated_between(150, (100, 200))
    assert not allocated_between(100, (100, 200))
    assert not allocated_between(250, (100, 200))
    assert allocated_between(32000, (31000, 400))  # wrapped
    assert allocated_between(300, (31000, 400))
    assert not allocated_between(1000, (31000, 400))
    assert not allocated_between(5, (7, 7))
