"""The harness on servers it did not write: each must get a true status, verdict and exit code.

Real servers, real Locust (as a subprocess), real sampler, a few seconds of load
each. The zombie counts are exact: readiness sends no request (the harness reads
the kernel's socket table), so a server that never reaps holds exactly one zombie
per request Locust completed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from tests.server_helpers import ROOT, wait_until
from tests.test_loadtest_harness import (
    assert_nothing_left,
    harness_in_background,
    read_json,
    run_dir,
    run_harness,
    wait_for_load,
)

pytestmark = pytest.mark.slow

TUTORIAL = f"{sys.executable} {ROOT / 'tests' / 'tutorial_server.py'} {{port}}"
FORKING_TCP = f"{sys.executable} {ROOT / 'tests' / 'forking_tcp_server.py'} {{port}}"
HTTP_SERVER = f"{sys.executable} -m http.server --bind 127.0.0.1 {{port}}"
SHORT = ["--duration", "3"]  # Locust needs about a second to spawn its users on a busy machine


def test_raw_mode_measures_servers_that_do_not_speak_http(tmp_path: Path) -> None:
    # The tutorial's server with and without its reaper, ForkingTCPServer (a timer
    # reaper) and a leaking server behind `sh -c`, side by side in one run.
    wrapped = f"{TUTORIAL} --no-reaper; true"
    result = run_harness(
        tmp_path,
        "--protocol", "raw", *SHORT,
        "--server-cmd", f"tutorial={TUTORIAL} --no-reaper",
        "--server-cmd", f"tutorial-reaper={TUTORIAL}",
        "--server-cmd", f"forking-tcp={FORKING_TCP}",
        "--server-cmd", f"wrapped=sh -c '{wrapped}'",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    summary = {s["name"]: s for s in read_json(run / "summary.json")["scenarios"]}
    assert list(summary) == ["tutorial", "tutorial-reaper", "forking-tcp", "wrapped"]
    records = {name: read_json(run / name / "scenario.json") for name in summary}
    for name, record in records.items():
        assert record["status"] == "ok", (name, record["errors"])
        assert record["load"]["requests"] > 0 and record["load"]["failures"] == 0, name

    leak = records["tutorial"]
    assert leak["final_sample"]["zombies"] == leak["load"]["requests"]  # exactly one each
    requests = leak["load"]["requests"]
    assert summary["tutorial"]["verdict"].startswith(
        f"never reaps: all {requests:,} children that exited left as zombies, held by PID"
    )

    assert records["tutorial-reaper"]["final_sample"]["zombies"] == 0
    assert summary["tutorial-reaper"]["verdict"].startswith("reaps every child")

    forking = records["forking-tcp"]
    assert forking["final_sample"]["zombies"] == 0
    assert "leak" not in summary["forking-tcp"]["verdict"]
    assert "left as zombies" not in summary["forking-tcp"]["verdict"]

    wrapped_record = records["wrapped"]
    final = wrapped_record["final_sample"]
    assert final["zombies"] == 0  # the shell itself holds none
    assert final["descendant_zombies"] == wrapped_record["load"]["requests"]
    (holder, *_) = wrapped_record["zombie_holders"]
    assert holder["depth"] == 1 and "tutorial_server.py" in holder["cmdline"]
    verdict = summary["wrapped"]["verdict"]
    assert verdict.startswith("never reaps: all")
    assert f"PID {holder['pid']}" in verdict and "shell wrapper" in verdict
    assert_nothing_left(*records.values())


def test_a_server_that_answers_something_else_is_a_failed_run(tmp_path: Path) -> None:
    # http.server answers 404 to /<name>: every request fails the default checks.
    result = run_harness(tmp_path, *SHORT, "--server-cmd", HTTP_SERVER)
    assert result.returncode == 1
    assert "requests failed" in result.stderr and "status 404" in result.stderr
    run = run_dir(tmp_path)
    record = read_json(run / "external" / "scenario.json")
    assert record["status"] == "failed-requests"
    (row,) = read_json(run / "summary.json")["scenarios"]
    assert row["failure_reasons"][0]["reason"] == "status 404 (expected 200)"
    assert any("status 404" in warning for warning in row["warnings"])
    assert_nothing_left(record)


def test_a_server_that_never_forks_is_said_to(tmp_path: Path) -> None:
    result = run_harness(
        tmp_path, *SHORT, "--no-body-check", "--path", "/", "--server-cmd", HTTP_SERVER
    )
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    record = read_json(run / "external" / "scenario.json")
    assert record["status"] == "ok" and record["load"]["failures"] == 0
    (row,) = read_json(run / "summary.json")["scenarios"]
    assert row["verdict"].startswith("never forked a child: nothing to reap")
    assert_nothing_left(record)


def test_a_plain_locustfile_runs_unchanged(tmp_path: Path) -> None:
    locustfile = tmp_path / "plain_locustfile.py"
    locustfile.write_text(
        "from locust import HttpUser, task\n\n"
        "class Visitor(HttpUser):\n"
        "    @task\n"
        "    def home(self):\n"
        "        self.client.get('/')\n"
    )
    out = tmp_path / "runs"
    result = run_harness(out, "--reaper", "loop", *SHORT, "--locustfile", str(locustfile))
    assert result.returncode == 0, result.stderr
    folder = run_dir(out) / "reaper-loop"
    record = read_json(folder / "scenario.json")
    server = read_json(folder / "server.json")
    assert record["status"] == "ok" and record["load"]["failures"] == 0
    # The hooks loaded beside it write the final figures: every request is counted.
    assert record["load"]["requests"] == server["accepted"] > 0
    assert all(check["ok"] for check in record["cross_checks"]), record["cross_checks"]
    assert_nothing_left(record)


def test_locust_killed_mid_run_fails_the_run(tmp_path: Path) -> None:
    with harness_in_background(tmp_path, "--reaper", "loop") as proc:
        before = wait_for_load(tmp_path, "reaper-loop")
        locust = psutil.Process(before["locust_pid"])
        locust.kill()
        wait_until(lambda: proc.poll() is not None, timeout=90, what="the harness to end")
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Locust was killed by SIGKILL" in err and "Traceback" not in err
    record = read_json(run_dir(tmp_path) / "reaper-loop" / "scenario.json")
    assert record["status"] == "failed"
    assert_nothing_left(before, record)


SILENT = (
    f'{sys.executable} -c "import socket, sys, time; s = socket.socket();'
    " s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)\" {port}"
)


def test_a_server_that_never_answers_is_a_failed_run(tmp_path: Path) -> None:
    # It listens (so it is ready) but never accepts: Locust completes no request.
    result = run_harness(tmp_path, *SHORT, "--server-cmd", SILENT)
    assert result.returncode == 1
    assert "Locust completed no request" in result.stderr and "Traceback" not in result.stderr
    record = read_json(run_dir(tmp_path) / "external" / "scenario.json")
    assert record["status"] == "failed" and record["load"]["requests"] == 0
    assert_nothing_left(record)
