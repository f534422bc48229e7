"""diagnostics.census: zombies per parent, on the whole host and below one process.

Each count is checked against psutil (which finds children by scanning every process:
an independent way) on processes whose zombies the test made.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import psutil
import pytest

from bench.holder import HolderSpec, ZombieHolder
from diagnostics import census
from diagnostics.census import HostCensus, TreeCensus
from diagnostics.errors import NoSuchProcess
from tests import diag_helpers as h
from tests.leak_helpers import Leaker
from tests.server_helpers import reap_adopted
from tests.test_diagnostics_doctor import MAIN_THREAD_EXITS


@pytest.fixture
def holder() -> Iterator[ZombieHolder]:
    """6 zombies, 2 live children, and two live children holding 3 and 2 zombies."""
    with ZombieHolder(HolderSpec(exits=[0] * 5 + [1], alive=2, middles=[3, 2])) as made:
        yield made


def oracle(parents: list[int]) -> dict[int, int]:
    """Zombie children per parent, the psutil way."""
    return {pid: h.oracle_counts(pid)[1] for pid in parents}


@pytest.fixture(params=["pidfds", "exe links", "stat lines"])
def host(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostCensus]:
    """A host census the way it runs here (a pidfd per process), and its fallbacks: no
    pidfds (a kernel before 5.3, no descriptors left), and no exe link readable either
    (another user's processes, unless root), where only the stat lines say."""
    if request.param != "pidfds":
        monkeypatch.setattr(census, "_new_epoll", lambda: None)
    if request.param == "stat lines":

        def denied(path: str) -> str:
            raise PermissionError(13, "Permission denied", path)

        monkeypatch.setattr(census.os, "readlink", denied)
    made = HostCensus()
    yield made
    made.close()


def test_host_census_counts_each_parent_s_zombies(holder: ZombieHolder, host: HostCensus) -> None:
    middles = holder.children.alive[-2:]
    for _ in range(3):  # the first reads every zombie, the others remember them
        holders = host.take().holders
        assert {pid: holders.get(pid, 0) for pid in [holder.pid, *middles]} == oracle(
            [holder.pid, *middles]
        ) == {holder.pid: 6, middles[0]: 3, middles[1]: 2}  # fmt: skip
        assert all(pid not in holders for pid in holder.children.alive[:2])


def test_tree_census_sees_the_tree_only(holder: ZombieHolder) -> None:
    middles = holder.children.alive[-2:]
    assert TreeCensus(holder.pid).take().holders == {holder.pid: 6, middles[0]: 3, middles[1]: 2}
    assert TreeCensus(middles[0]).take().holders == {middles[0]: 3}
    assert TreeCensus(holder.children.alive[0]).take().zombies == 0


@pytest.mark.slow
def test_more_exits_at_once_than_one_epoll_call_returns_by_default() -> None:
    """epoll.poll() hands back at most 1,023 events unless asked for more: a host with
    more zombies than that when the census starts must still count them all."""
    with ZombieHolder(HolderSpec.zombies(1100)) as made:
        host = HostCensus()
        try:
            assert host.take().holders[made.pid] == 1100
        finally:
            host.close()


def test_zombies_made_and_reaped_between_calls_come_and_go(host: HostCensus) -> None:
    before = host.take().holders
    with ZombieHolder(HolderSpec.zombies(4)) as made:
        assert made.pid not in before
        assert host.take().holders.get(made.pid) == 4
    assert made.pid not in host.take().holders  # reaped, and the holder gone


def test_zombies_reaped_by_a_parent_that_stays_leave_the_census(host: HostCensus) -> None:
    leaker = Leaker()
    try:
        leaker.leak(3)
        assert host.take().holders.get(leaker.pid) == 3
        leaker.reap()
        assert leaker.pid not in host.take().holders
        leaker.leak(2)
        assert host.take().holders.get(leaker.pid) == 2
    finally:
        leaker.end()


def test_zombies_of_a_parent_that_exited_are_found_with_their_new_parent(
    holder: ZombieHolder, host: HostCensus
) -> None:
    """The census remembers zombies between calls; when their parent dies they are handed
    to a subreaper (pytest here) or init, and the census must say so."""
    middle = holder.children.alive[-2]
    assert host.take().holders[middle] == 3
    orphans = [child.pid for child in psutil.Process(middle).children()]
    os.kill(middle, signal.SIGKILL)
    h.wait_until(
        lambda: all(psutil.Process(pid).ppid() != middle for pid in orphans),
        what="the middle's zombies to be handed on",
    )
    adopter = psutil.Process(orphans[0]).ppid()
    try:
        holders = host.take().holders
        assert middle not in holders
        assert holders[adopter] >= 3
        assert holders[holder.pid] == 6 + 1  # the killed middle is its zombie now
    finally:
        if adopter == os.getpid():
            reap_adopted(orphans)


def test_a_process_whose_main_thread_exited_is_not_counted(host: HostCensus) -> None:
    """It shows as Z while a thread of it runs: alive, and nothing to reap yet."""
    parent = h.spawn(MAIN_THREAD_EXITS)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        h.wait_until(lambda: psutil.Process(child).status() == "zombie", what="state Z")
        assert parent.pid not in host.take().holders
    finally:
        h.end_by_stdin(parent)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfds in this Python")
def test_close_gives_back_every_descriptor() -> None:
    before = len(os.listdir("/proc/self/fd"))
    host = HostCensus()
    host.take()
    assert len(os.listdir("/proc/self/fd")) > before  # one per process, where pidfds exist
    host.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_tree_census_of_a_missing_process_raises() -> None:
    with pytest.raises(NoSuchProcess):
        TreeCensus(h.MISSING_PID)
