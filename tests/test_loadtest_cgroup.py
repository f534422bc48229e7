"""loadtest/cgroup.py: finding this process's pids cgroup (v1 and v2), and the cgroup's life.

The hierarchy is found from /proc's mount and membership tables; the tests feed it
tables as the kernel writes them. The v2 path is exercised on a directory shaped like
a delegated cgroup2 tree where this machine has none; the real kernel is used where
it is there (a real cgroup, a real server forking into its limit: test_loadtest_safety).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest import cgroup

V1_MOUNTS = """\
25 30 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
34 25 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 25 0:31 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 25 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_OWN = "8:pids:/build/job7\n4:memory:/m\n0::/\n"


def tables(tmp_path: Path, mounts: str, own: str) -> tuple[Path, Path]:
    (tmp_path / "mountinfo").write_text(mounts)
    (tmp_path / "cgroup").write_text(own)
    return tmp_path / "mountinfo", tmp_path / "cgroup"


def test_v1_is_the_pids_hierarchy_at_this_process_path(tmp_path: Path) -> None:
    found = cgroup.find_hierarchy(*tables(tmp_path, V1_MOUNTS, V1_OWN))
    assert found == cgroup.Hierarchy(1, Path("/sys/fs/cgroup/pids/build/job7"))


def test_a_container_mount_rooted_inside_the_hierarchy(tmp_path: Path) -> None:
    mounts = "36 25 0:31 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
    own = "8:pids:/docker/abc/inner\n"
    found = cgroup.find_hierarchy(*tables(tmp_path, mounts, own))
    assert found.directory == Path("/sys/fs/cgroup/pids/inner")


def fake_v2_tree(tmp_path: Path, subtree: str, controllers: str = "cpu io memory pids") -> Path:
    root = tmp_path / "unified"
    own = root / "user.slice"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text(controllers + "\n")
    (own / "cgroup.subtree_control").write_text(subtree + "\n")
    return root


def v2_tables(tmp_path: Path, root: Path) -> tuple[Path, Path]:
    mounts = f"30 25 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw\n"
    return tables(tmp_path, mounts, "0::/user.slice\n")


def test_v2_with_pids_delegated_makes_a_limited_cgroup(tmp_path: Path) -> None:
    root = fake_v2_tree(tmp_path, "memory pids")
    hierarchy = cgroup.find_hierarchy(*v2_tables(tmp_path, root))
    assert hierarchy == cgroup.Hierarchy(2, root / "user.slice")
    made = cgroup.create("no reaper/1", 600, hierarchy)
    assert made.path == root / "user.slice" / f"reaperlab-{os.getpid()}-no_reaper_1"
    assert (made.path / "pids.max").read_text() == "600\n"
    assert made.procs_file == made.path / "cgroup.procs"
    (made.path / "pids.max").unlink()  # a real cgroup's files go with it; a fake's do not
    assert made.remove(reap=lambda: None) == (set(), None) and not made.path.exists()


def test_v2_enables_pids_for_the_subtree_when_it_may(tmp_path: Path) -> None:
    root = fake_v2_tree(tmp_path, "memory")
    assert cgroup.find_hierarchy(*v2_tables(tmp_path, root)).version == 2
    assert (root / "user.slice" / "cgroup.subtree_control").read_text() == "+pids\n"


def test_v2_without_the_pids_controller_is_unavailable(tmp_path: Path) -> None:
    root = fake_v2_tree(tmp_path, "", controllers="cpu memory")
    with pytest.raises(cgroup.CgroupUnavailable, match="no pids cgroup"):
        cgroup.find_hierarchy(*v2_tables(tmp_path, root))


def test_unreadable_tables_are_unavailable_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(cgroup.CgroupUnavailable, match="cannot read"):
        cgroup.find_hierarchy(tmp_path / "none", tmp_path / "none")


def test_stale_cgroups_of_dead_harnesses_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f"reaperlab-{dead}-no-reaper"
    mine = tmp_path / f"reaperlab-{os.getpid()}-no-reaper"
    busy = tmp_path / f"reaperlab-{dead}-busy"
    for folder in (stale, mine, busy):
        folder.mkdir()
    (busy / "cgroup.procs").write_text("1\n")  # not empty: rmdir refuses, as for a real one
    assert cgroup.remove_stale(tmp_path) == [stale]
    assert mine.exists() and busy.exists()
