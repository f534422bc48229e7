"""diagnostics.limits: the PID limits a fork meets, on real cgroups, users and rlimits.

The cgroup figures are checked against cgroups the test makes and fills (a helper
process holding a known number of zombies), so the expected use is known without
reading the same files the module reads; the RLIMIT_NPROC figures against a helper
running as a uid nobody else uses, with a limit prlimit sets.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diagnostics import limits
from diagnostics.limits import Hierarchy, Limit, Limits
from tests.cgroup_helpers import MakeCgroup, make_cgroup, needs_cgroup, start_in_cgroup
from tests.diag_helpers import SYSTEM_PYTHON, end_by_stdin
from tests.server_helpers import ROOT

__all__ = ["make_cgroup"]  # the fixture, used by name

UNUSED_UID = 54_321
"""A uid no other process here runs as, so its task count is the helper's alone."""
"""The helper runs as that uid: it cannot enter /root, where this venv's Python lives."""


def limit(kind: limits.Kind, value: int, used: int, scope: str = "host") -> Limit:
    return Limit(kind, value, used, scope, "test")


def test_seconds_left_is_headroom_over_rate() -> None:
    assert limit("pids.max", 300, 100).seconds_left(20.0) == 10.0
    assert limit("pids.max", 300, 100).seconds_left(0.0) == math.inf
    assert limit("pids.max", 300, 100).seconds_left(-5.0) == math.inf  # shrinking
    assert limit("pids.max", 300, 300).seconds_left(0.0) == 0.0  # already there
    assert limit("pids.max", 300, 301).headroom == 0  # moved in past its limit


def test_the_first_reached_is_timed_by_each_limit_s_own_rate() -> None:
    tight = limit("pids.max", 100, 90, "cgroup /a")  # 10 left
    loose = limit("pid_max", 32_767, 2_767)  # 30,000 left
    both = Limits((tight, loose))
    assert both.tightest() is tight
    rates = {tight.key: 0.0, loose.key: 6_000.0}  # the host fills in 5 s, the cgroup never
    assert both.first_reached(lambda lim: rates[lim.key]) == (loose, 5.0)
    rates[tight.key] = 1.0  # now the cgroup fills in 10 s
    assert both.first_reached(lambda lim: rates[lim.key]) == (loose, 5.0)
    rates[tight.key] = 4.0
    assert both.first_reached(lambda lim: rates[lim.key]) == (tight, 2.5)
    assert both.first_reached(lambda lim: None) == (tight, None)  # no rate yet: the tightest
    assert both.first_reached(lambda lim: 6_000.0 if lim is loose else None) == (tight, None)
    assert both.first_reached(lambda lim: 0.0) == (tight, math.inf)


def test_host_limits_are_pid_max_and_threads_max_over_the_kernel_task_count() -> None:
    host = limits.host_limits()
    by_kind = {lim.kind: lim for lim in host.limits}
    assert set(by_kind) == {"pid_max", "threads-max"}
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert by_kind["pid_max"].value == pid_max - 1  # PIDs 1 .. pid_max - 1
    assert by_kind["threads-max"].value == int(Path("/proc/sys/kernel/threads-max").read_text())
    processes = sum(name.isdigit() for name in os.listdir("/proc"))
    assert by_kind["pid_max"].used >= processes  # every process is a task; threads add more


MOUNTS = """\
36 25 0:31 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 25 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


@pytest.mark.parametrize(
    ("mounts", "expected"),
    [
        (MOUNTS, Hierarchy(1, "/", Path("/sys/fs/cgroup/pids"))),  # v1 holds the controller
        (MOUNTS.splitlines()[1], Hierarchy(2, "/", Path("/sys/fs/cgroup/unified"))),
        ("25 30 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", None),
        ("30 25 0:26 /kube\\040pod /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
         Hierarchy(2, "/kube pod", Path("/sys/fs/cgroup"))),
    ],
)  # fmt: skip
def test_the_pids_hierarchy_is_found_in_mountinfo(
    tmp_path: Path, mounts: str, expected: Hierarchy | None
) -> None:
    (tmp_path / "mountinfo").write_text(mounts)
    assert limits.pids_hierarchy(str(tmp_path / "mountinfo")) == expected


def test_a_mount_rooted_inside_the_hierarchy_shows_only_its_subtree() -> None:
    inside = Hierarchy(1, "/docker/abc", Path("/sys/fs/cgroup/pids"))
    assert inside.directory("/docker/abc") == Path("/sys/fs/cgroup/pids")
    assert inside.directory("/docker/abc/inner") == Path("/sys/fs/cgroup/pids/inner")
    assert inside.directory("/docker/other") is None


def test_a_v2_limit_is_read_from_the_unified_tree(tmp_path: Path) -> None:
    """This machine's pids controller is on v1; a directory shaped like a v2 mount with
    this process in its root stands in for one (a real root has no pids.max)."""
    if "0::/\n" not in Path("/proc/self/cgroup").read_text():
        pytest.skip("this process is not in the root of a v2 hierarchy")
    (tmp_path / "pids.max").write_text("50\n")
    (tmp_path / "pids.current").write_text("7\n")
    (tmp_path / "pids.events").write_text("max 3\n")
    found = limits.pids_cgroup(os.getpid(), Hierarchy(2, "/", tmp_path))
    assert found is not None
    assert (found.path, found.fork_failures) == ("/", 3)
    assert [(lim.value, lim.used, lim.scope) for lim in found.limits] == [(50, 7, "cgroup /")]


@needs_cgroup
def test_every_level_up_the_hierarchy_and_the_tightest(make_cgroup: MakeCgroup) -> None:
    outer = make_cgroup("limits-outer", 40)
    inner = make_cgroup("limits-inner", 100, inside=outer)
    helper, refused = start_in_cgroup(inner, zombies=5, threads=2)
    try:
        assert refused == 0
        found = limits.process_limits(helper.pid)
        tasks = 1 + 2 + 5  # the helper's main thread, its two threads, its zombies
        cgroups = [lim for lim in found.limits if lim.kind == "pids.max"]
        assert [(lim.value, lim.used) for lim in cgroups] == [(100, tasks), (40, tasks)]
        assert cgroups[0].source == f"{inner.path}/pids.max, pids.current"
        assert found.cgroup is not None and found.cgroup.directory == inner.path
        assert found.cgroup.path.endswith(f"/{outer.path.name}/{inner.path.name}")
        assert found.tightest() is cgroups[1]  # the outer one: 32 left against 92
        assert {lim.kind for lim in found.limits} == {"pids.max", "pid_max", "threads-max"}
        assert found.not_applied == {"RLIMIT_NPROC": "root is exempt"} or os.geteuid() != 0
    finally:
        end_by_stdin(helper)


@needs_cgroup
def test_forks_refused_at_the_limit_are_counted(make_cgroup: MakeCgroup) -> None:
    outer = make_cgroup("limits-refusing", 20)
    inner = make_cgroup("limits-leaf", 1000, inside=outer)
    helper, refused = start_in_cgroup(inner, zombies=25)
    try:
        assert refused == 25 - 19  # the helper holds 1 of the 20
        found = limits.process_limits(helper.pid)
        assert found.tightest().headroom == 0
        assert found.tightest().seconds_left(0.0) == 0.0
        assert found.cgroup is not None
        if outer.version == 1:  # v1 counts refusals where the forking task is
            assert found.cgroup.fork_failures == refused
        else:  # v2 counts them at the level whose limit refused, and above
            assert found.cgroup.fork_failures == 0
            assert [lim.fork_failures for lim in found.limits if lim.kind == "pids.max"] == [
                0,
                refused,
            ]
    finally:
        end_by_stdin(helper)


@needs_cgroup
def test_a_cgroup_without_a_limit_says_why(make_cgroup: MakeCgroup) -> None:
    unlimited = make_cgroup("limits-unlimited", 10)
    (unlimited.path / "pids.max").write_text("max\n")
    helper, _ = start_in_cgroup(unlimited, zombies=1)
    try:
        found = limits.process_limits(helper.pid)
        own = [lim for lim in limits.process_limits(os.getpid()).limits if lim.kind == "pids.max"]
        if own:
            pytest.skip("this test process's own cgroups set limits, which apply above")
        assert found.cgroup is not None
        assert found.not_applied["pids.max"] == f"no pids.max set on {found.cgroup.path} or above"
        assert found.cgroup.fork_failures == 0
    finally:
        end_by_stdin(helper)


needs_root_and_prlimit = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("prlimit") or not shutil.which("setpriv")
    or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root (to run a helper as another uid), prlimit, setpriv and /usr/bin/python3",
)  # fmt: skip


def as_user(nproc: str) -> tuple[str, ...]:
    return (
        "prlimit", f"--nproc={nproc}", "--",
        "setpriv", f"--reuid={UNUSED_UID}", f"--regid={UNUSED_UID}", "--clear-groups",
    )  # fmt: skip


@needs_root_and_prlimit
def test_rlimit_nproc_counts_the_user_s_tasks_threads_and_zombies() -> None:
    helper, refused = start_in_cgroup(
        None, zombies=4, threads=2, prefix=as_user("50"), python=SYSTEM_PYTHON
    )
    try:
        assert refused == 0
        found = limits.process_limits(helper.pid)
        nproc = [lim for lim in found.limits if lim.kind == "RLIMIT_NPROC"]
        assert [(lim.value, lim.used, lim.scope) for lim in nproc] == [
            (50, 1 + 2 + 4, f"uid {UNUSED_UID}")
        ]
        assert found.tightest() is nproc[0]
    finally:
        end_by_stdin(helper)


@needs_root_and_prlimit
def test_rlimit_nproc_that_cannot_bind_before_pid_max_is_left_out_with_the_reason() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    if resource.getrlimit(resource.RLIMIT_NPROC)[1] < pid_max:  # raising it needs a capability
        pytest.skip("the hard RLIMIT_NPROC here is below pid_max")
    helper, _ = start_in_cgroup(None, zombies=1, prefix=as_user(str(pid_max)), python=SYSTEM_PYTHON)
    try:
        found = limits.process_limits(helper.pid)
        assert found.not_applied["RLIMIT_NPROC"] == (
            f"{pid_max:,} cannot be reached before pid_max ({pid_max:,})"
        )
        assert "RLIMIT_NPROC" not in {lim.kind for lim in found.limits}
    finally:
        end_by_stdin(helper)


def test_a_process_that_is_gone_raises_file_not_found() -> None:
    with pytest.raises(FileNotFoundError):
        limits.process_limits(4_194_305)  # above any pid_max


@needs_cgroup
def test_pid_headroom_is_the_tightest_limit_s_headroom(make_cgroup: MakeCgroup) -> None:
    """What the harness caps zombies by (diagnostics.machine), asked from inside a cgroup
    limited to 50 tasks, where the asking interpreter is the only one."""
    group = make_cgroup("limits-headroom", 50)
    code = "from diagnostics.machine import pid_headroom; print(pid_headroom())"
    join = f'echo $$ > {group.procs_file} && exec "$@"'
    result = subprocess.run(
        ["sh", "-c", join, "sh", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=True,
    )  # fmt: skip
    assert int(result.stdout) == 50 - 1
