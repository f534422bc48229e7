"""When a run goes wrong, the harness says so truly, exits accordingly, and leaves nothing running
(issue 20).

Each test runs ``python -m loadtest`` as a user would, injects the fault by PID (a signal to
Locust, a worker or the harness itself) or through a server with the habit at fault
(tests/odd_server.py), then reads the run directory and looks in /proc for anything left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest

from diagnostics.proctable import read_stat, task_children
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
from tests.test_loadtest_safety import assert_no_cgroup_left, needs_cgroup, without_cgroup
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

ODD = f"{sys.executable} {ROOT / 'tests' / 'odd_server.py'} {{port}}"


def odd(*flags: str) -> list[str]:
    return ["--server-cmd", " ".join([ODD, *flags]), "--no-body-check"]


def record_of(out: Path, name: str = "external") -> dict[str, Any]:
    return read_json(run_dir(out) / name / "scenario.json")


def summary_of(out: Path) -> dict[str, Any]:
    (scenario,) = read_json(run_dir(out) / "summary.json")["scenarios"]
    return scenario


def one_line(stderr: str, *words: str) -> str:
    """The one stderr line that holds all ``words``."""
    (line,) = [line for line in stderr.splitlines() if all(w in line for w in words)]
    return line


def gone(pid: int) -> bool:
    try:
        return read_stat(pid).zombie
    except Exception:
        return True


def reaped(pid: int) -> bool:
    """Whether ``pid`` is gone for good; reaps it if a killed harness handed it to pytest (a
    subreaper under --child-leaks)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return not psutil.pid_exists(pid)


def requests_done(out: Path, scenario: str = "reaper-loop") -> int:
    """Requests completed so far, from the request timeline's last row."""
    try:
        rows = (run_dir(out) / scenario / "locust_requests.csv").read_text().split()
        return int(rows[-1].split(",")[1])
    except (OSError, ValueError, IndexError):
        return 0


def workers_of(locust: int) -> list[int]:
    return [pid for pid in task_children(locust) if not gone(pid)]


def test_a_frozen_locust_ends_with_its_workers_when_the_harness_is_killed(tmp_path: Path) -> None:
    # The harness froze Locust (SIGSTOP to its group, as at the zombie cap) and is killed
    # before it resumes it: a stopped process acts on no death signal but SIGKILL.
    with harness_in_background(tmp_path, "--reaper", "loop", "--processes", "2") as proc:
        record = wait_for_load(tmp_path, "reaper-loop")
        locust = record["locust_pid"]
        wait_until(lambda: len(workers_of(locust)) == 2, what="Locust's two workers")
        workers = workers_of(locust)
        # Frozen under load, as at the cap (a worker caught between its fork and its first
        # instruction has not taken its death signal yet: the harness never freezes then).
        wait_until(lambda: requests_done(tmp_path) > 0, what="requests from the workers")
        os.killpg(locust, signal.SIGSTOP)
        wait_until(lambda: read_stat(locust).state == "T", what="Locust stopped")
        proc.kill()
        proc.communicate()
    for pid in (locust, *workers, record["server_pid"]):
        wait_until(partial(reaped, pid), what=f"{pid} ended and reaped")
    cgroup = Path((record.get("cgroup") or {}).get("path") or "/nonexistent")
    if cgroup.exists():  # a harness killed outright leaves its empty cgroup to the next run
        wait_until(lambda: not (cgroup / "cgroup.procs").read_text().split(), what="empty cgroup")
        cgroup.rmdir()


@needs_cgroup
def test_locust_gets_one_sigterm_and_its_stop_is_recorded(tmp_path: Path) -> None:
    result = run_harness(
        tmp_path, "--no-reaper", "--zombie-cap", "100", "--rate", "0", "--duration", "30"
    )
    assert result.returncode == 0, result.stderr
    folder = run_dir(tmp_path) / "no-reaper"
    record = read_json(folder / "scenario.json")
    assert record["capped"] is True
    assert (folder / "locust.log").read_text().count("Got SIGTERM signal") == 1
    stop = record["stops"]["locust"]
    assert stop["signals"] == ["SIGTERM"] and not stop["killed"]
    assert record["stops"]["server"]["signals"] == ["SIGTERM"]
    assert_nothing_left(record)


def test_locust_ended_early_by_a_signal_fails_the_run(tmp_path: Path) -> None:
    with harness_in_background(tmp_path, "--reaper", "loop", "--duration", "30") as proc:
        record = wait_for_load(tmp_path, "reaper-loop")
        wait_until(lambda: requests_done(tmp_path) > 20, what="some load")
        os.kill(record["locust_pid"], signal.SIGTERM)  # Locust exits 0 on SIGTERM
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    line = one_line(err, "Locust ended after")
    assert "of its 30 s run, not stopped by the harness" in line and "Got SIGTERM signal" in line
    run = run_dir(tmp_path)
    assert read_json(run / "run.json")["exit_code"] == 1
    record = read_json(run / "reaper-loop" / "scenario.json")
    assert record["status"] == "failed" and record["sources"]["requests"] == "timeline"
    timeline = (run / "reaper-loop" / "locust_requests.csv").read_text().split()
    assert record["load"]["requests"] == int(timeline[-1].split(",")[1])
    assert_nothing_left(record)


def test_a_lost_locust_worker_fails_the_run(tmp_path: Path) -> None:
    with harness_in_background(tmp_path, "--reaper", "loop", "--processes", "2") as proc:
        record = wait_for_load(tmp_path, "reaper-loop")
        locust = record["locust_pid"]
        wait_until(lambda: len(workers_of(locust)) == 2, what="Locust's two workers")
        wait_until(lambda: requests_done(tmp_path) > 20, what="some load")
        lost = workers_of(locust)[0]
        os.kill(lost, signal.SIGKILL)
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert f"PID {lost}" in one_line(err, "Locust lost 1 worker process")
    record = read_json(run_dir(tmp_path) / "reaper-loop" / "scenario.json")
    assert record["status"] == "failed" and [w["pid"] for w in record["lost_workers"]] == [lost]
    assert read_json(run_dir(tmp_path) / "run.json")["exit_code"] == 1
    assert_nothing_left(record)


def test_two_workers_that_end_with_the_run_are_not_lost(tmp_path: Path) -> None:
    result = run_harness(tmp_path, "--reaper", "loop", "--processes", "2", "--duration", "4")
    assert result.returncode == 0, result.stderr
    record = read_json(run_dir(tmp_path) / "reaper-loop" / "scenario.json")
    assert record["status"] == "ok" and record["lost_workers"] == []


def test_a_rate_far_below_the_one_asked_is_a_warning(tmp_path: Path) -> None:
    # 4 users whose every request takes 0.3 s cannot make the 40 requests/s asked.
    result = run_harness(tmp_path, "--reaper", "loop", "--work-ms", "300", "--duration", "4")
    assert result.returncode == 0, result.stderr
    line = one_line(result.stderr, "warning: reaper-loop: the load ran at")
    assert "of the --rate 40 asked (below 80%)" in line
    (scenario,) = read_json(run_dir(tmp_path) / "summary.json")["scenarios"]
    assert any("of the --rate 40 asked" in warning for warning in scenario["warnings"])


def test_a_server_that_ignores_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    result = run_harness(tmp_path, *odd("--ignore-term", "--reap"), "--stop-grace", "1",
                         "--duration", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "killed (SIGKILL)" in one_line(result.stderr, "did not exit within --stop-grace 1 s")
    record = record_of(tmp_path)
    stop = record["stops"]["server"]
    assert stop["signals"] == ["SIGTERM", "SIGKILL"] and stop["killed"] is True
    assert stop["waited_s"] >= 1 and stop["ended"] == "killed by SIGKILL"
    assert any("--stop-grace 1 s" in warning for warning in summary_of(tmp_path)["warnings"])
    assert_nothing_left(record)


@pytest.mark.parametrize("cgroup", ["kernel", "sampling"])
def test_a_daemonizing_server_is_followed_and_ended(tmp_path: Path, cgroup: str) -> None:
    args = (*odd("--daemonize", "--reap"), "--duration", "3")
    result = run_harness(tmp_path, *args) if cgroup == "kernel" else without_cgroup(tmp_path, *args)
    if cgroup == "kernel" and "cap enforced by sampling" in result.stdout:
        pytest.skip("no pids cgroup here")
    assert result.returncode == 0, result.stderr
    record = record_of(tmp_path)
    assert record["cap_enforcement"] == cgroup
    daemon = record["daemonized"]
    assert daemon["pid"] == record["server_pid"] != daemon["launcher_pid"]
    assert "the server daemonized" in result.stdout
    assert record["load"]["requests"] > 0 and record["final_sample"]["zombies"] == 0
    assert record["stops"]["server"]["signals"] == ["SIGTERM"]
    assert_nothing_left(record)


def test_a_daemon_that_never_listens_is_told_to_stay_in_the_foreground(tmp_path: Path) -> None:
    result = without_cgroup(tmp_path, *odd("--daemonize", "--no-listen"), "--server-timeout", "2")
    assert result.returncode == 2
    line = one_line(result.stderr, "exited with code 0 before it was ready")
    assert "run it in the foreground" in line and "daemon off;" in line
    record = record_of(tmp_path)
    (daemon,) = record["left_running"]  # it was running: the harness ended it
    assert "odd_server.py" in daemon["command"] and not psutil.pid_exists(daemon["pid"])


def test_what_the_server_left_running_is_ended_and_named(tmp_path: Path) -> None:
    # Without a cgroup the harness knows them only as their subreaper.
    result = without_cgroup(tmp_path, *odd("--leave-running", "--reap"), "--duration", "3")
    assert result.returncode == 0, result.stderr
    record = record_of(tmp_path)
    (left,) = record["left_running"]
    assert left["command"] == "sleep 300" and not psutil.pid_exists(left["pid"])
    assert "ended 1 process(es)" in one_line(result.stderr, "warning: external: the harness ended")


@needs_cgroup
def test_the_cap_is_of_zombies_exactly_whatever_ran_at_start_up(tmp_path: Path) -> None:
    # 30 helpers run when the port opens and exit a second later: they must not leave
    # 30 more zombies room under pids.max.
    cap = 150
    result = run_harness(
        tmp_path, *odd("--helpers", "30", "--helper-seconds", "1"), "--zombie-cap", str(cap),
        "--rate", "0", "--users", "10", "--duration", "30",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = record_of(tmp_path)
    assert record["capped"] is True and record["cap_hit"]["by"] == "zombies"
    assert record["final_sample"]["zombies"] == cap  # the kernel makes it exact
    assert record["cgroup"]["pids_max_end"] == cap + 1  # the server alone
    assert record["refused_at_cap"] == record["cgroup"]["forks_refused"] > 0
    assert record["sources"]["refused_at_cap"] == "cgroup"
    verdict = summary_of(tmp_path)["verdict"]
    if record["events"] is None:  # the server counts nothing: no share of children
        assert "%" not in verdict
    else:  # the event record counted every child: the share is of those
        assert verdict.startswith(f"leaves zombies: {cap} of the ")
    assert_no_cgroup_left(record)
    assert_nothing_left(record)


@needs_cgroup
def test_live_children_at_the_limit_are_not_the_zombie_cap(tmp_path: Path) -> None:
    # Each child lives 30 s after its answer: live children, not zombies, fill pids.max.
    result = run_harness(
        tmp_path, *odd("--linger", "30"), "--zombie-cap", "100", "--rate", "0",
        "--users", "10", "--duration", "30",
    )  # fmt: skip
    assert result.returncode == 1
    line = one_line(result.stderr, "error: external: the server's live processes grew")
    assert "The zombie cap was not reached" in line
    record = record_of(tmp_path)
    assert record["status"] == "pids-limit" and record["capped"] is False
    assert record["cap_hit"]["by"] == "live processes" and record["cap_hit"]["zombies"] == 0
    verdict = summary_of(tmp_path)["verdict"]
    assert "zombie cap of" not in verdict and "the zombie cap was not reached" in verdict
    assert len(record["left_running"]) >= 90  # the lingering children, ended and named
    assert_no_cgroup_left(record)
    assert_nothing_left(record)


def test_the_exit_status_and_run_json_agree_when_ctrl_c_hits_the_report(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        harness(tmp_path, "--reaper", "loop", "--duration", "2"),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def ended() -> bool:
            try:
                return bool(read_json(next(tmp_path.iterdir()) / "run.json").get("ended"))
            except (StopIteration, OSError, ValueError):
                return False

        wait_until(ended, what="the run to end", timeout=120)
        proc.send_signal(signal.SIGINT)  # matplotlib takes seconds to draw the report
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    run = run_dir(tmp_path)
    meta = read_json(run / "run.json")
    assert meta["exit_code"] == proc.returncode
    if proc.returncode == 130:
        assert meta["exit_status"] == "interrupted" and "Traceback" not in err
        if not (run / "index.html").exists():
            assert "interrupted; the report was not drawn (Ctrl-C while drawing it)" in err
    else:  # the report was drawn before the signal landed
        assert proc.returncode == 0 and (run / "index.html").exists()


def test_the_trace_says_what_the_harness_did(tmp_path: Path) -> None:
    result = subprocess.run(
        harness(tmp_path, "--no-reaper", "--zombie-cap", "100", "--rate", "0", "--duration", "30"),
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "REAPERLAB_DEBUG": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    record = read_json(run / "no-reaper" / "scenario.json")
    log = (run / "harness.log").read_text()
    server, locust = record["server_pid"], record["locust_pid"]
    for expected in (
        f"process {server} (server) started:",
        f"process {locust} (locust) started:",
        "phase load",
        "phase settling",
        "settle: {",
        f"signal SIGSTOP -> group {locust} (locust: freeze: the cap is reached)",
        f"signal SIGTERM -> {locust} (locust: stop)",
        f"signal SIGTERM -> {server} (server: stop)",
        f"process {server} (server) ended: ",
        "cap reached",
        "pids.max = ",
        "removed",
        "run ends: exit 0 (ok)",
    ):
        assert expected in log, expected
    quiet = run_harness(tmp_path / "quiet", "--reaper", "loop", "--duration", "2")
    assert quiet.returncode == 0 and not (run_dir(tmp_path / "quiet") / "harness.log").exists()


def test_an_interrupted_reaper_gets_no_false_warning_and_no_verdict_past_the_interrupt(
    tmp_path: Path,
) -> None:
    with harness_in_background(
        tmp_path, "--reaper", "loop", "--users", "20", "--rate", "100"
    ) as proc:
        wait_for_load(tmp_path, "reaper-loop")
        wait_until(lambda: requests_done(tmp_path) > 100, what="some load")
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    record = read_json(run_dir(tmp_path) / "reaper-loop" / "scenario.json")
    # No check compares the two sides of the interrupt: the last sample before it against
    # the counters of the server's shutdown. Those within one moment stand.
    across = ("final zombies", "zombies left", "accepted")
    assert [c for c in record["cross_checks"] if any(w in c["text"] for w in across)] == []
    assert all(check["ok"] for check in record["cross_checks"])
    scenario = summary_of(tmp_path)
    assert scenario["verdict"].startswith("interrupted after ")
    assert f"{scenario['requests']:,} requests" in scenario["verdict"]
    assert "%" not in scenario["verdict"] and "leak" not in scenario["verdict"]
    assert [w for w in scenario["warnings"] if "!=" in w or "left at the end" in w] == []
    assert_nothing_left(record)
