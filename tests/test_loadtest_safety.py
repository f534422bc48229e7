"""When things break, the cap still holds and the records tell the truth (issue 11).

Each test runs ``python -m loadtest`` as a user would, on real processes: the cap held by
the kernel's pids cgroup, a disk that fills under the sampler, Ctrl-C pressed again while
the harness cleans up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from diagnostics.contract import SAMPLE_COLUMNS
from tests.cgroup_helpers import needs_cgroup
from tests.server_helpers import ROOT
from tests.test_loadtest_harness import (
    assert_nothing_left,
    harness,
    harness_in_background,
    read_json,
    run_dir,
    run_harness,
    wait_for_load,
)
from tests.waiting import wait_until


def assert_no_cgroup_left(record: dict) -> None:
    assert not Path(record["cgroup"]["path"]).exists(), "the scenario's cgroup was not removed"


@pytest.mark.slow
@needs_cgroup
@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_the_kernel_holds_the_cap_at_full_speed(tmp_path: Path, attempt: int) -> None:
    cap = 500
    result = run_harness(
        tmp_path, "--no-reaper", "--zombie-cap", str(cap), "--rate", "0", "--users", "20",
        "--duration", "5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    record = read_json(run / "no-reaper" / "scenario.json")
    counters = read_json(run / "no-reaper" / "server.json")
    assert record["cap_enforcement"] == "kernel"
    assert counters["forked"] <= cap  # overshoot 0: every child holds a PID until reaped
    assert record["capped"] is True and record["status"] == "capped"
    assert (
        record["cgroup"]["peak"] is None or record["cgroup"]["peak"] <= record["cgroup"]["pids_max"]
    )
    verdict = read_json(run / "summary.json")["scenarios"][0]["verdict"]
    assert f"stopped at the zombie cap of {cap}" in verdict
    # The kernel's count of refused forks is the one source; our server counts the same.
    assert (
        record["refused_at_cap"] == record["cgroup"]["forks_refused"] == counters["fork_failures"]
    )
    if record["refused_at_cap"]:
        assert f"the kernel refused {record['refused_at_cap']} fork" in verdict
    assert_no_cgroup_left(record)
    assert_nothing_left(record)


@pytest.mark.slow
@needs_cgroup
def test_a_full_disk_stops_the_load_and_says_so(small_disk: Path) -> None:
    cap = 1000
    result = run_harness(
        small_disk, "--no-reaper", "--zombie-cap", str(cap), "--rate", "100",
        "--interval", "0.005", "--duration", "60",
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "disk full writing samples.csv" in lines[0], result.stderr
    run = run_dir(small_disk)
    record = read_json(run / "no-reaper" / "scenario.json")
    assert record["status"] == "failed" and record["errors"] == ["disk full writing samples.csv"]
    assert record["data_ends_at"] is not None
    assert read_json(run / "run.json")["exit_code"] == 1
    # The load was stopped, not left to run its minute unwatched; the cap held all along.
    assert record["load_ended"] - record["load_started"] < 60
    assert (
        record["cgroup"]["peak"] is None or record["cgroup"]["peak"] <= record["cgroup"]["pids_max"]
    )
    if (run / "no-reaper" / "server.json").exists():
        assert read_json(run / "no-reaper" / "server.json")["forked"] <= cap
    # What was gathered is whole rows, and nothing temporary is left.
    text = (run / "no-reaper" / "samples.csv").read_text()
    assert text.endswith("\n") and len(text.splitlines()) > 10
    assert {len(line.split(",")) for line in text.splitlines()} == {len(SAMPLE_COLUMNS)}
    leftovers = [p.name for p in small_disk.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [] and not (run / ".reserve").exists()
    assert_no_cgroup_left(record)
    assert_nothing_left(record)


def _sigint_pending(pid: int) -> bool:
    """SIGINT sent to ``pid`` but not yet delivered (its bit in SigPnd or ShdPnd)."""
    bit = 1 << (signal.SIGINT - 1)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("SigPnd", "ShdPnd") and int(value, 16) & bit:
            return True
    return False


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
@pytest.mark.parametrize("presses", [2, 3])
def test_ctrl_c_again_does_not_cut_the_clean_up_short(tmp_path: Path, presses: int) -> None:
    # Children that work 3 s keep the server shutting down for a while after the first
    # Ctrl-C: the later ones land in the harness's clean-up.
    args = ("--no-reaper", "--work-ms", "3000", "--users", "60")
    with harness_in_background(tmp_path, *args) as proc:
        before = wait_for_load(tmp_path, "no-reaper")
        samples = run_dir(tmp_path) / "no-reaper" / "samples.csv"
        wait_until(
            lambda: (
                int((samples.read_text().splitlines() or ["0,0,0,0,0"])[-1].split(",")[4] or 0)
                >= 100
            ),  # (the file may be there before its first line)
            what="100 zombies",
            timeout=60,
        )
        proc.send_signal(signal.SIGINT)
        assert proc.stdout is not None
        for line in proc.stdout:  # the harness says it is cleaning up
            if "interrupted (Ctrl-C)" in line:
                break
        for _ in range(presses - 1):
            assert _alive(before["server_pid"]), "the clean-up ended before the test pressed"
            proc.send_signal(signal.SIGINT)
            wait_until(lambda: not _sigint_pending(proc.pid), what="SIGINT delivered")
        _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    run = run_dir(tmp_path)
    meta = read_json(run / "run.json")
    assert meta["exit_status"] == "interrupted" and meta["interrupts"] >= 2
    record = read_json(run / "no-reaper" / "scenario.json")
    assert record["status"] == "interrupted"
    assert (run / "no-reaper" / "server.json").is_file()  # the server's counters were kept
    for key in ("server_pid", "locust_pid"):
        assert _group_gone(record[key]), f"{key}'s process group is still there"
    # The verdict is judged on what was measured up to the Ctrl-C, and says it was cut short.
    assert record["final_sample"]["time"] < record["interrupted_at"]
    verdict = read_json(run / "summary.json")["scenarios"][0]["verdict"]
    if record["events"] is not None:  # every child's life up to the Ctrl-C
        assert verdict.startswith("interrupted after") and "; never reaps: all" in verdict
    else:
        assert verdict.startswith("leaks one zombie per request; interrupted after")
    assert_no_cgroup_left(record)
    assert_nothing_left(before, record)


@pytest.mark.slow
def test_a_run_that_gathered_nothing_does_not_replace_latest(tmp_path: Path) -> None:
    runs = tmp_path / "reports" / "runs"
    (runs / "older").mkdir(parents=True)
    (tmp_path / "reports" / "latest").symlink_to("runs/older")
    result = subprocess.run(
        [sys.executable, "-m", "loadtest", "--plain", "--duration", "1",
         "--server-cmd", "false {port}"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    failed = [p for p in runs.iterdir() if p.name != "older"]
    assert len(failed) == 1 and (failed[0] / "run.json").is_file()
    assert os.readlink(tmp_path / "reports" / "latest") == "runs/older"


READ_ONLY_PIDS = (
    "mount --bind /sys/fs/cgroup/pids /sys/fs/cgroup/pids"
    ' && mount -o remount,ro,bind /sys/fs/cgroup/pids && exec "$@"'
)
"""A private mount namespace where the pids hierarchy is read-only: no cgroup can be made."""


def without_cgroup(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m loadtest`` where no pids cgroup can be made (skips where that cannot be)."""
    unshare = ["unshare", "-m", "--propagation", "private", "sh", "-c", READ_ONLY_PIDS, "sh"]
    probe = subprocess.run([*unshare, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only pids hierarchy: {probe.stderr.strip()}")
    return subprocess.run(
        [*unshare, *harness(out, *args)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_without_a_cgroup_the_summary_says_the_cap_is_only_sampled(tmp_path: Path) -> None:
    result = without_cgroup(tmp_path, "--no-reaper", "--duration", "4")
    assert result.returncode == 0, result.stderr
    record = read_json(run_dir(tmp_path) / "no-reaper" / "scenario.json")
    assert record["cap_enforcement"] == "sampling" and record["cgroup"] is None
    assert "cap enforced by sampling: may overshoot" in result.stdout
    assert_nothing_left(record)
