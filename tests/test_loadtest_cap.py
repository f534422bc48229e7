"""loadtest/cap.py: how high the cap may be, and when a sample or the kernel says it is reached.

In process, on real objects: samples as the sampler makes them, and a pids cgroup whose
files are written as the kernel writes them (the real kernel's cgroup is exercised end to
end in test_loadtest_safety).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from diagnostics.contract import Sample
from loadtest import cgroup
from loadtest.cap import HEADROOM_RESERVE, MIN_CAP, ZombieCap, effective_cap, over_cap
from loadtest.errors import HarnessError


def sample(zombies: int, descendant_zombies: int = 0, elapsed: float = 1.0) -> Sample:
    return Sample(
        time=1000.0 + elapsed, elapsed=elapsed, children=zombies, alive=0, zombies=zombies,
        descendant_zombies=descendant_zombies, fds=None, rss_bytes=None, cpu_percent=None,
        threads=None, sample_cost_ms=0.1,
    )  # fmt: skip


def pids_cgroup(tmp_path: Path, events: str) -> cgroup.PidsCgroup:
    (tmp_path / "pids.events").write_text(events)
    return cgroup.PidsCgroup(2, tmp_path)


def test_the_asked_cap_stands_where_the_machine_has_room() -> None:
    assert effective_cap(500, 32000) == 500


def test_the_cap_is_lowered_to_half_the_headroom_above_the_reserve() -> None:
    assert effective_cap(5000, HEADROOM_RESERVE + 3000) == 1500
    assert effective_cap(5000, HEADROOM_RESERVE + 2 * MIN_CAP) == MIN_CAP


def test_too_little_headroom_is_refused_in_one_line() -> None:
    with pytest.raises(HarnessError, match=r"^only 2199 PIDs left on this machine: a zombie cap"):
        effective_cap(5000, HEADROOM_RESERVE + 2 * MIN_CAP - 1)


def test_a_sample_under_the_cap_is_not_over_it() -> None:
    assert not over_cap(sample(99), 100, refused=0)
    assert over_cap(sample(100), 100, refused=0)


def test_grandchildren_zombies_count_toward_the_cap() -> None:
    assert not over_cap(sample(60, descendant_zombies=39), 100, refused=0)
    assert over_cap(sample(60, descendant_zombies=40), 100, refused=0)


def test_a_fork_refused_by_the_kernel_is_the_cap_whatever_the_count() -> None:
    assert over_cap(sample(0), 100, refused=1)


def capped_at(value: int) -> ZombieCap:
    cap = ZombieCap()
    cap.choose(value, 32768)
    return cap


def test_refusals_are_read_from_pids_events(tmp_path: Path) -> None:
    cap = capped_at(100)
    cap.cgroup = pids_cgroup(tmp_path, "max 0\n")
    assert not cap.kernel_refused()
    assert not cap.shown_by(sample(5))
    (tmp_path / "pids.events").write_text("max 3\n")
    assert cap.kernel_refused()
    assert cap.shown_by(sample(5))


def test_without_a_cgroup_only_the_count_reaches_the_cap() -> None:
    cap = capped_at(100)
    assert cap.procs_file is None and not cap.kernel_refused()
    assert not cap.shown_by(sample(99))
    assert cap.shown_by(sample(100))


def test_the_cap_is_reached_once_from_whichever_thread_sees_it_first() -> None:
    cap = capped_at(100)
    assert cap.reached_at is None
    firsts: list[bool] = []
    threads = [
        threading.Thread(target=lambda at=at: firsts.append(cap.reach(at))) for at in (1.5, 2.5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(firsts) == [False, True]
    assert cap.reached and cap.reached_at in (1.5, 2.5)
    assert not cap.reach(9.0) and cap.reached_at != 9.0


def test_choosing_gives_the_effective_cap() -> None:
    cap = ZombieCap()
    assert cap.choose(5000, HEADROOM_RESERVE + 3000) == 1500 == cap.value


def v1_cgroup(tmp_path: Path, live: int, zombies: int, refused: int = 0) -> cgroup.PidsCgroup:
    """A pids cgroup's files as the kernel writes them: the task list names the live tasks
    only, pids.current counts the zombies too."""
    (tmp_path / "tasks").write_text("".join(f"{1000 + i}\n" for i in range(live)))
    (tmp_path / "pids.current").write_text(f"{live + zombies}\n")
    (tmp_path / "pids.events").write_text(f"max {refused}\n")
    return cgroup.PidsCgroup(1, tmp_path)


def test_the_limit_is_the_cap_plus_the_live_tasks_not_the_zombies(tmp_path: Path) -> None:
    cap = capped_at(100)
    cap.cgroup = v1_cgroup(tmp_path, live=31, zombies=2)
    held = cap.hold()
    assert held is not None and (held.baseline, held.zombies, held.pids_max) == (31, 2, 131)
    assert (tmp_path / "pids.max").read_text() == "131\n"


def test_the_limit_is_tightened_when_start_up_helpers_exit(tmp_path: Path) -> None:
    cap = capped_at(150)
    cap.cgroup = v1_cgroup(tmp_path, live=31, zombies=0)
    cap.hold()
    assert cap.tighten() is None  # nothing fell yet
    v1_cgroup(tmp_path, live=41, zombies=5)  # children in flight: the limit stands
    assert cap.tighten() is None and (tmp_path / "pids.max").read_text() == "181\n"
    v1_cgroup(tmp_path, live=1, zombies=40)  # the 30 helpers are gone
    assert cap.tighten() == 151 and (tmp_path / "pids.max").read_text() == "151\n"


def test_a_fork_refused_with_the_room_full_of_zombies_is_the_zombie_cap(tmp_path: Path) -> None:
    cap = capped_at(100)
    cap.cgroup = v1_cgroup(tmp_path, live=1, zombies=0)
    cap.hold()
    v1_cgroup(tmp_path, live=21, zombies=80, refused=1)  # 20 children in flight, 80 zombies
    assert cap.reach(3.0, seen_at=2000.5)
    reached = cap.reached_how
    assert reached is not None and reached.by == "zombies"
    assert (reached.zombies, reached.live, reached.pids_max, reached.time) == (80, 21, 101, 2000.5)


def test_a_fork_refused_with_the_room_full_of_live_processes_is_not_the_cap(
    tmp_path: Path,
) -> None:
    cap = capped_at(100)
    cap.cgroup = v1_cgroup(tmp_path, live=6, zombies=0)  # a prefork pool of 5 and its parent
    cap.hold()
    v1_cgroup(tmp_path, live=106, zombies=0, refused=3)  # the pool grew to the limit
    assert cap.reach(9.0)
    reached = cap.reached_how
    assert reached is not None and reached.by == "live processes"


def test_a_sample_at_the_cap_is_the_zombie_cap_whatever_the_cgroup_says(tmp_path: Path) -> None:
    cap = capped_at(100)
    cap.cgroup = v1_cgroup(tmp_path, live=6, zombies=0)
    cap.hold()
    v1_cgroup(tmp_path, live=50, zombies=0)
    assert cap.reach(1.0, sample(100))
    assert cap.reached_how is not None and cap.reached_how.by == "zombies"
    assert cap.reached_how.time == sample(100).time
