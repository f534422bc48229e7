"""diagnostics.spawns: spawn records matched to children by PID and birth, in this process."""

from __future__ import annotations

import linecache
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from diagnostics.proctable import boot_time, read_stat
from diagnostics.spawns import FORK, POPEN, TICK_S, TRACKER, ChildSlots, SpawnRecord, ThreadNote
from tests.waiting import wait_until

RUNNER = ThreadNote("MainThread", runner=True, known=True, started_during=None)


@pytest.fixture
def tracker() -> Iterator[None]:
    """The process's tracker, on for the test (it nests: the suite's own check may have it on)."""
    TRACKER.activate()
    yield
    TRACKER.deactivate()


def test_a_start_time_inside_the_birth_window_is_the_child() -> None:
    record = SpawnRecord(FORK, (), RUNNER, None, 1, pid=42, born=(100.0, 100.5))
    at = boot_time()
    assert record.is_of(42, at + 100.2)
    assert record.is_of(42, at + 100.0 - TICK_S / 2)  # /proc rounds a start time down
    assert record.is_of(42, at + 100.5)
    assert not record.is_of(42, at + 100.6)  # the PID handed out again, later
    assert not record.is_of(42, at + 100.0 - 2 * TICK_S)  # an orphan adopted meanwhile
    assert not record.is_of(43, at + 100.2)


@pytest.mark.usefixtures("tracker")
def test_a_fork_is_recorded_with_its_line_and_matched() -> None:
    pid = os.fork()  # the line the record names
    if pid == 0:
        os._exit(0)
    try:
        wait_until(lambda: read_stat(pid).state == "Z", "the child to exit")
        started = read_stat(pid).started
        TRACKER.settle()  # a fork's PID is read from what its child wrote, when asked
        record = TRACKER.lookup(pid, started)
        assert record is not None and record.call == FORK
        filename, line, function = record.stack[0]
        assert (filename, function) == (
            __file__,
            "test_a_fork_is_recorded_with_its_line_and_matched",
        )
        assert linecache.getline(filename, line).strip().startswith("pid = os.fork()")
        assert TRACKER.lookup(pid, started + 1.0) is None  # same PID, another process
    finally:
        os.waitpid(pid, 0)


@pytest.mark.usefixtures("tracker")
def test_a_popen_in_another_thread_is_noted_with_that_thread() -> None:
    made: list[subprocess.Popen[bytes]] = []
    thread = threading.Thread(
        target=lambda: made.append(subprocess.Popen([sys.executable, "-c", "pass"])),
        name="spawner",
    )
    thread.start()
    thread.join()
    (proc,) = made
    try:
        wait_until(lambda: read_stat(proc.pid).state == "Z", "the child to exit")
        TRACKER.settle()
        record = TRACKER.lookup(proc.pid, read_stat(proc.pid).started)
        assert record is not None and record.call == POPEN
        assert record.thread.name == "spawner" and not record.thread.runner
        assert record.popen is not None and record.popen() is proc
    finally:
        proc.wait()


def test_a_slot_taken_again_hands_back_what_its_last_child_wrote() -> None:
    slots = ChildSlots(count=2)
    first, second, third = (SpawnRecord(FORK, (), RUNNER, None, n) for n in (1, 2, 3))
    assert slots.take(first) is None and slots.take(second) is None
    assert first.slot is not None and slots.read(first.slot) is None  # emptied for the child
    slots.write(first.slot, 4242, 12.5)  # what the child does, first thing
    assert slots.take(third) == (first, (4242, 12.5))  # read before the slot is reused
    assert third.slot == 0 and slots.read(0) is None
    assert slots.take(SpawnRecord(FORK, (), RUNNER, None, 4)) == (second, None)  # never written
