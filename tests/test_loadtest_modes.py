"""Locust's other modes end to end: its web UI driven over HTTP, and a master with workers.

The test drives the UI the way a browser does (POST /swarm, GET /stats/requests,
POST /stop) and starts the workers itself, on 127.0.0.1, with the one command a user
runs on another machine: the same protocol and the same code path as across machines.
Locust is never imported here (gevent); every process is a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from diagnostics.contract import LoadEnd
from tests.cli_runner import assert_one_line_error
from tests.server_helpers import ROOT, wait_until
from tests.test_loadtest_harness import assert_nothing_left, harness, read_json, run_dir

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ui(port: int, path: str, form: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if form is None else urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data, timeout=10) as answer:
        return json.loads(answer.read())


def zombies_tab(port: int) -> dict[str, str]:
    """The Zombies tab's figures, as the UI's stats poll delivers them."""
    try:
        stats = ui(port, "/stats/requests")
    except OSError:
        return {}
    tab = {entry["key"]: entry["data"] for entry in stats.get("extended_stats", [])}
    return {row["figure"]: row["value"] for row in tab.get("zombies", [])}


def count(text: str | None) -> int:
    return int((text or "-1").replace(",", "")) if (text or "").replace(",", "").isdigit() else -1


def test_the_web_ui_drives_the_load_and_shows_zombies(tmp_path: Path) -> None:
    port = free_port()
    command = harness(tmp_path, "--web", "--web-port", str(port), "--duration", "120")
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: "zombies" in zombies_tab(port), "the Zombies tab", 60)
        assert zombies_tab(port)["requests completed"] in ("?", "0")
        assert ui(port, "/swarm", {"user_count": 4, "spawn_rate": 4})["success"] is True
        wait_until(lambda: count(zombies_tab(port).get("zombies")) >= 20, "zombies to rise", 60)
        first = count(zombies_tab(port)["zombies"])
        wait_until(
            lambda: count(zombies_tab(port).get("zombies")) > first, "zombies to keep rising", 30
        )
        assert zombies_tab(port)["verdict so far"].startswith("one zombie per request")
        assert ui(port, "/stop", {})["success"] is True  # the load stops, not the run
        wait_until(lambda: ui(port, "/stats/requests")["state"] == "stopped", "Locust to stop", 30)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)  # Ctrl-C ends the run
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in out
    run = run_dir(tmp_path)
    record = read_json(run / "no-reaper" / "scenario.json")
    assert record["status"] == "ok" and record["load_ended_by"] == LoadEnd.CTRL_C
    requests = record["load"]["requests"]
    assert requests >= 20 and record["load"]["failures"] == 0
    assert record["final_sample"]["zombies"] == requests  # one per request, exactly
    assert record["locust_cpu"] > 0  # the UI's Locust is measured like a headless one
    assert all(check["ok"] for check in record["cross_checks"]), record["cross_checks"]
    for name in ("index.html", "summary.json", "zombies.png", "no-reaper.png"):
        assert (run / name).is_file()
    assert read_json(run / "summary.json")["scenarios"][0]["verdict"].startswith("never reaps: all")
    assert_nothing_left(record)


def worker(master_port: int, tmp: Path) -> subprocess.Popen[str]:
    """A worker as docs/distributed.md's command starts it, the locustfile fetched from the master.

    Locust writes the fetched files into the temporary folder under their own names:
    a folder of this test's, so that no other run on the machine writes over them.
    """
    command = [sys.executable, "-m", "locust", "-f", "-", "--worker",
               "--master-host", "127.0.0.1", "--master-port", str(master_port)]  # fmt: skip
    tmp.mkdir(exist_ok=True)
    with (tmp / "worker.log").open("a") as log:
        return subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp)},
            stdout=subprocess.DEVNULL, stderr=log, text=True,
        )  # fmt: skip


def distributed(out: Path, master_port: int, *args: str) -> list[str]:
    return harness(out, "--no-reaper", "--expect-workers", "2", "--master-bind", "127.0.0.1",
                   "--master-port", str(master_port), *args)  # fmt: skip


def test_two_workers_make_the_load_and_every_request_is_a_zombie(tmp_path: Path) -> None:
    port, runs = free_port(), tmp_path / "runs"
    command = distributed(runs, port, "--worker-timeout", "60", "--duration", "4")
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    workers: list[subprocess.Popen[str]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the harness echoes the command to run on each machine
            if "locust -f - --worker --master-host 127.0.0.1" in line:
                break
        workers = [worker(port, tmp_path / "w"), worker(port, tmp_path / "w")]
        out, err = proc.communicate(timeout=120)
        for each in workers:
            each.wait(timeout=30)  # the master tells its workers to quit
    finally:
        for each in [proc, *workers]:
            if each.poll() is None:
                each.kill()
                each.communicate()
    assert proc.returncode == 0, err
    record = read_json(run_dir(runs) / "no-reaper" / "scenario.json")
    requests = record["load"]["requests"]
    assert requests > 0 and record["load"]["failures"] == 0
    assert record["final_sample"]["zombies"] == requests  # all workers' requests together
    figures = record["workers"]
    assert figures["count"] == 2
    assert sum(w["requests"] for w in figures["workers"]) == requests
    assert all(w["requests"] > 0 for w in figures["workers"])
    assert "2 Locust workers" in (run_dir(runs) / "summary.md").read_text()
    assert_nothing_left(record)


def test_workers_that_never_come_give_one_line_and_leave_nothing(tmp_path: Path) -> None:
    command = distributed(tmp_path, free_port(), "--worker-timeout", "3", "--duration", "5")
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("loadtest:")]
    assert len(errors) == 1 and "did not all connect within --worker-timeout 3 s" in errors[0]
    assert "Traceback" not in result.stderr
    record = read_json(run_dir(tmp_path) / "no-reaper" / "scenario.json")
    assert record["status"] == "no-workers"
    assert record["load"]["requests"] == 0  # no load went anywhere
    assert_nothing_left(record)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--web", "--all"], "--web runs one scenario"),
        (["--expect-workers", "2"], "--expect-workers and --master-bind go together"),
        (["--server-host", "0.0.0.0"], "--server-host is for --expect-workers"),
        (["--web", "--expect-workers", "2"], "not allowed with"),
        (["--web", "--web-port", "0"], "--web-port must be 1 to 65535"),
    ],
)
def test_bad_mode_flags_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = subprocess.run(
        harness(tmp_path, *args), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert_one_line_error(result, message)
    assert not any(tmp_path.iterdir())  # nothing was started, nothing written
