"""The harness end to end: real server, real Locust (as a subprocess), real sampler.

Locust is never imported here: gevent would patch fork, waitpid and signals for
every other test in this process. Each test runs ``python -m loadtest`` as a
user would and reads the run directory it leaves; the bad-flag checks also run its
``main`` in-process (it imports no Locust), which is what ``make test-fast`` takes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.cli_runner import RUNNERS, assert_one_line_error, runner_for
from tests.server_helpers import ROOT, wait_until

SMALL_LOAD = ["--users", "4", "--rate", "40", "--plain"]


def harness(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "loadtest", "--out", str(out), *SMALL_LOAD, *args]


def run_harness(
    out: Path, *args: str, timeout: float = 180, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        harness(out, *args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_dir(out: Path) -> Path:
    (only,) = [p for p in out.iterdir() if p.is_dir()]
    return only


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def assert_nothing_left(*records: dict[str, Any]) -> None:
    """Every process the harness started is gone (a zombie of it that reached pytest,
    the subreaper, fails the test through --child-leaks=fail)."""
    for record in records:
        for key in ("server_pid", "locust_pid"):
            if record.get(key):
                assert not psutil.pid_exists(record[key]), f"{key} {record[key]} still exists"


@pytest.mark.slow
def test_two_scenarios_end_to_end(tmp_path: Path) -> None:
    # A relative --out, as `make loadtest` uses: every file must land under it all the same.
    result = run_harness(Path("runs"), "--duration", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path / "runs")
    meta = read_json(run / "run.json")
    assert meta["exit_status"] == "ok" and meta["scenarios"] == ["reaper-loop", "no-reaper"]
    assert meta["machine"]["pid_max"] > 0 and meta["subreaper"] is True
    records = {}
    for name in ("reaper-loop", "no-reaper"):
        folder = run / name
        for file in ("samples.csv", "server.json", "server.log", "scenario.json",
                     "locust_stats.csv", "locust_stats_history.csv", "locust.log"):  # fmt: skip
            assert (folder / file).is_file(), f"{name}/{file} missing"
        record = records[name] = read_json(folder / "scenario.json")
        assert record["status"] == "ok"
        assert all(check["ok"] for check in record["cross_checks"]), record["cross_checks"]
        assert record["load"]["requests"] > 0 and record["load"]["failures"] == 0
        server = read_json(folder / "server.json")
        assert server["accepted"] == server["forked"] == record["load"]["requests"]
    loop, leak = records["reaper-loop"], records["no-reaper"]
    assert loop["final_sample"]["zombies"] == 0
    leak_counters = read_json(run / "no-reaper" / "server.json")
    assert leak["final_sample"]["zombies"] == leak_counters["forked"] - leak_counters["reaped"]
    assert leak["final_sample"]["zombies"] == leak["load"]["requests"]  # one per request
    summary = read_json(run / "summary.json")
    assert [s["name"] for s in summary["scenarios"]] == ["reaper-loop", "no-reaper"]
    for name in ("index.html", "summary.md", "zombies.png", "children.png", "no-reaper.png"):
        assert (run / name).is_file()
    assert f"runs/{run.name}" in result.stdout
    assert_nothing_left(loop, leak)


@pytest.mark.slow
def test_the_zombie_cap_stops_the_load(tmp_path: Path) -> None:
    cap = 300
    result = run_harness(
        tmp_path, "--no-reaper", "--zombie-cap", str(cap), "--duration", "60", "--rate", "60"
    )
    assert result.returncode == 0, result.stderr
    record = read_json(run_dir(tmp_path) / "no-reaper" / "scenario.json")
    assert record["capped"] is True and record["status"] == "capped"
    assert cap <= record["final_sample"]["zombies"] <= cap * 1.05
    assert record["capped_at"] < 60
    assert f"zombie cap of {cap} reached" in result.stdout
    assert_nothing_left(record)


@contextmanager
def harness_in_background(out: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A long run to interrupt; if the test fails first, the harness is still ended.

    Killing the harness is enough: its server and Locust get SIGTERM from the
    kernel when it dies (PR_SET_PDEATHSIG).
    """
    proc = subprocess.Popen(
        harness(out, "--duration", "60", *args),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def wait_for_load(out: Path, scenario: str) -> dict[str, Any]:
    """Until Locust runs and the sampler has written rows; returns scenario.json then."""
    path = lambda: next(out.iterdir()) / scenario / "scenario.json"  # noqa: E731

    def loading() -> bool:
        try:
            record = read_json(path())
        except (StopIteration, OSError, ValueError):
            return False
        samples = path().with_name("samples.csv")
        return (
            bool(record.get("locust_pid"))
            and samples.is_file()
            and len(samples.read_text().splitlines()) > 10
        )

    wait_until(loading, timeout=60, what="the load to start")
    return read_json(path())


@pytest.mark.slow
def test_ctrl_c_ends_everything_and_keeps_the_data(tmp_path: Path) -> None:
    with harness_in_background(tmp_path, "--no-reaper") as proc:
        before = wait_for_load(tmp_path, "no-reaper")
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    run = run_dir(tmp_path)
    assert read_json(run / "run.json")["exit_status"] == "interrupted"
    record = read_json(run / "no-reaper" / "scenario.json")
    assert record["status"] == "interrupted"
    assert len((run / "no-reaper" / "samples.csv").read_text().splitlines()) > 10
    assert (run / "index.html").is_file()  # the report is drawn from what was gathered
    assert_nothing_left(before, record)


@pytest.mark.slow
def test_a_killed_server_is_reported_and_its_zombies_reaped(tmp_path: Path) -> None:
    with harness_in_background(tmp_path, "--no-reaper") as proc:
        before = wait_for_load(tmp_path, "no-reaper")
        folder = run_dir(tmp_path) / "no-reaper"
        wait_until(
            lambda: len(psutil.Process(before["server_pid"]).children()) >= 20,
            timeout=60,
            what="some zombies to hand back",
        )
        psutil.Process(before["server_pid"]).kill()
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().count("\n") == 0 and "died during the load" in err
    record = read_json(folder / "scenario.json")
    assert record["status"] == "server-died"
    assert_nothing_left(before, record)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "-1"], "--duration must be"),
        (["--reaper", "sometimes"], "invalid choice"),
        (["--scenarios", "reaper-loop,nope"], "unknown scenario 'nope'"),
        (["--server-cmd", "python3 -m http.server"], "must contain {port}"),
        (["--rate", "-5"], "--rate must not be negative"),
        (["--users", "0"], "--users must be at least 1"),
        (["--no-reaper", "--all"], "not allowed with"),
        (["--locustfile", "/nonexistent.py"], "is not a file"),
        (["--zombie-cap", "50"], "--zombie-cap must be 100 to 1000000"),
        (["--stop-grace", "0"], "--stop-grace must be 0.1 to 300 seconds"),
    ],
)
@pytest.mark.parametrize("runner", RUNNERS)
def test_bad_flags_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str, runner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Parsing stops before anything starts, so the in-process run cannot start a server."""
    run = runner_for("loadtest", runner, capsys)
    assert_one_line_error(run("--out", str(tmp_path), *SMALL_LOAD, *args), message)
    assert not any(tmp_path.iterdir())  # nothing was started, nothing written


@pytest.mark.slow
def test_a_server_that_never_listens_is_exit_2(tmp_path: Path) -> None:
    result = run_harness(
        tmp_path, "--server-cmd", "sleep 30 {port}", "--server-timeout", "1", "--duration", "3"
    )
    assert result.returncode == 2
    assert "did not open port" in result.stderr
    record = read_json(run_dir(tmp_path) / "external" / "scenario.json")
    assert record["status"] == "failed"
    assert_nothing_left(record)


@pytest.mark.slow
def test_locust_failing_to_start_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken_locustfile.py"
    broken.write_text("def broken(:\n")
    out = tmp_path / "runs"
    result = run_harness(out, "--reaper", "loop", "--duration", "3", "--locustfile", str(broken))
    assert result.returncode == 1
    assert "Locust failed" in result.stderr and "Traceback" not in result.stderr
    record = read_json(run_dir(out) / "reaper-loop" / "scenario.json")
    assert record["status"] == "failed"
    assert_nothing_left(record)


@pytest.mark.slow
def test_an_external_server_runs_under_the_same_harness(tmp_path: Path) -> None:
    command = f"{sys.executable} -m server --port {{port}} --reaper wakeup"
    result = run_harness(tmp_path, "--server-cmd", command, "--duration", "3")
    assert result.returncode == 0, result.stderr
    record = read_json(run_dir(tmp_path) / "external" / "scenario.json")
    assert record["status"] == "ok" and record["strategy"] is None
    assert record["load"]["requests"] > 0 and record["load"]["failures"] == 0
    assert record["final_sample"]["zombies"] == 0
    assert_nothing_left(record)
