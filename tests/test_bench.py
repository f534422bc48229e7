"""`python -m bench` end to end on its tiny setting: the file's shape, not the speed.

Benchmarks are not tests; nothing here asserts how fast anything is. These check
that the bench runs, writes every figure it promises, keeps partial results when
interrupted, and leaves no process behind (the suite's --child-leaks=fail: pytest is
the subreaper, so whatever the bench orphaned comes back to it and is caught).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.cli_runner import RUNNERS, assert_one_line_error, runner_for
from tests.server_helpers import ROOT, wait_until

BENCH = [sys.executable, "-m", "bench"]


def only_json(folder: Path) -> dict:
    files = list(folder.glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def positive(value: object) -> bool:
    return isinstance(value, int | float) and value > 0


@pytest.mark.slow
def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    result = subprocess.run(
        [*BENCH, "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    record = only_json(tmp_path)
    assert record["status"] == "ok"
    assert {"python", "kernel", "cpus", "pid_max"} <= record["machine"].keys()
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    assert record["code"] in (head, head + "+changes")
    assert record["load_generator"].split()[0] in ("wrk", "locust")

    throughput = record["throughput"]
    assert set(throughput["contenders"]) == {"ours", "forking_tcp_server", "minimal"}
    for row in throughput["contenders"].values():
        for key in ("rps", "p50_ms", "p99_ms", "requests", "parent_rss_bytes"):
            assert positive(row[key]), (row["label"], key, row[key])
    ceiling = throughput["fork_ceiling"]
    assert positive(ceiling["rate_per_s"]) and positive(ceiling["serial_rate_per_s"])
    assert positive(ceiling["rss_bytes"])
    assert ceiling["in_flight"] == record["settings"]["connections"]
    for check in throughput["targets"].values():
        assert positive(check["ratio"]) and isinstance(check["met"], bool)

    levels = record["sampler"]["levels"]
    assert [row["zombies"] for row in levels] == [0, 50]
    assert all(positive(row["ours_ms"]) and positive(row["psutil_ms"]) for row in levels)

    observer = record["observer"]
    assert positive(observer["without_sampler"]["rps"])
    assert positive(observer["with_sampler"]["rps"])
    assert positive(observer["samples"]) and positive(observer["target"]["ratio"])

    headroom = record["headroom"]
    for way in ("harness", "plain"):
        assert positive(headroom[way]["rps"]) and positive(headroom[way]["locust_cpu_cores"])
    assert positive(headroom["harness_vs_plain"]["ratio"])
    if record["load_generator"].startswith("wrk"):
        assert positive(headroom["wrk"]["rps"]) and positive(headroom["harness_vs_wrk"])

    events = record["events"]
    storm, served = events["fork_storm"], events["server"]
    assert positive(storm["rate_per_s_without"]) and positive(storm["rate_per_s_with"])
    if storm["sources"]["forks"] == "connector":  # with no event lost, every fork is there
        assert storm["events_lost"] != 0 or storm["all_recorded"] is True
        assert served["events_lost"] != 0 or served["matches_counter"] is True
    assert positive(served["forks_recorded"]) and positive(served["target"]["ratio"])
    assert 0 < served["recorder_share_of_machine"] < 1

    exporter = record["exporter"]
    # other processes may end meanwhile: the total is about the target, not at least it
    assert exporter["target_processes"] == 300 and positive(exporter["processes"])
    assert (
        positive(exporter["ms"]) and positive(exporter["start_ms"]) and positive(exporter["cpu_ms"])
    )
    assert isinstance(exporter["within_budget"], bool)

    assert "1. Server throughput" in result.stdout and str(tmp_path) in result.stdout
    assert "5. Event recorder" in result.stdout
    assert "6. Exporter: one scrape of the whole host" in result.stdout


@pytest.mark.slow
def test_ctrl_c_ends_everything_and_keeps_what_was_measured(tmp_path: Path) -> None:
    bench = subprocess.Popen(
        [*BENCH, "--sections", "throughput", "--rounds", "5", "--seconds", "5"]
        + ["--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        process = psutil.Process(bench.pid)
        # A fourth child comes only once the three servers are up: load is under way.
        wait_until(lambda: len(process.children()) >= 4, timeout=60, what="load under way")
        os.kill(bench.pid, signal.SIGINT)
        _out, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
    assert bench.returncode == 130
    assert err.strip().splitlines()[-1].startswith("bench: interrupted")
    record = only_json(tmp_path)
    assert record["status"] == "interrupted" and record["ended"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rounds", "0"], "--rounds"),
        (["--seconds", "-1"], "--seconds"),
        (["--sections", "speed"], "--sections"),
        (["--zombies", "3000"], "zombie levels"),
        (["--no-such-flag"], "unrecognized"),
    ],
)
@pytest.mark.parametrize("runner", RUNNERS)
def test_bad_flags_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str, runner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Parsing fails before the bench writes or starts anything, so in-process is safe."""
    run = runner_for("bench", runner, capsys)
    assert_one_line_error(run(*args, "--out", str(tmp_path)), message)
    assert not list(tmp_path.glob("*.json"))
