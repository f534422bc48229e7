"""machine_info and PID headroom, plus the benchmark's contract (not its speed)."""

from __future__ import annotations

import json
import os

from diagnostics.machine import machine_info, pid_headroom, task_count
from diagnostics.proctable import read_int
from tests import diag_helpers as h


def test_machine_info_has_the_run_json_keys() -> None:
    info = machine_info()
    assert {"python", "kernel", "cpus", "pid_max", "platform", "hostname"} <= info.keys()
    assert info["cpus"] == os.cpu_count()
    assert info["pid_max"] == read_int("/proc/sys/kernel/pid_max")
    json.dumps(info)


def test_pid_headroom_is_what_is_left_below_the_limits() -> None:
    pid_max = read_int("/proc/sys/kernel/pid_max")
    assert pid_max is not None
    headroom = pid_headroom()
    assert 0 < headroom < pid_max
    assert task_count() > 1


def test_bench_runs_side_by_side_and_leaves_nothing_behind() -> None:
    """Small levels and no budget: this checks the table's shape, not the speed."""
    result = h.run_cli_module(
        "bench.sampler_levels",
        *["--zombies", "0", "20", "--rounds", "2", "--json", "--budget-ms", "1e9"],
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["zombies"] for r in rows] == [0, 20]
    assert all(r["ours_ms"] > 0 and r["psutil_ms"] > 0 for r in rows)


def test_bench_refuses_too_many_zombies() -> None:
    result = h.run_cli_module("bench.sampler_levels", "--zombies", "3000")
    assert result.returncode == 2
