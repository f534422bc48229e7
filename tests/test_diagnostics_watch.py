"""watch: a run directory reports/ can render, on every way a watch can end."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.holder import HolderSpec, ZombieHolder
from diagnostics.contract import EVENTS, SAMPLE_COLUMNS, RunRecord, ScenarioRecord
from diagnostics.events import read
from diagnostics.watch import watch
from tests import diag_helpers as h
from tests.cli_runner import RUNNERS, runner_for
from tests.test_diagnostics_inherited import slow_requests

RUN_KEYS = {"id", "kind", "started", "ended", "exit_status", "parameters", "scenarios", "machine"}
SCENARIO_KEYS = {
    "name",
    "strategy",
    "started",
    "ended",
    "status",
    "capped",
    "server_pid",
    "errors",
    "warnings",
}


def load(run_dir: Path) -> tuple[dict, dict, list[dict[str, str]]]:
    """run.json, scenario.json and the sample rows of a watch run directory."""
    run = json.loads((run_dir / "run.json").read_text())
    scenario = json.loads((run_dir / "watch" / "scenario.json").read_text())
    with (run_dir / "watch" / "samples.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == SAMPLE_COLUMNS
        rows = list(reader)
    return run, scenario, rows


def start_watch(pid: int, out: Path, duration: str = "120") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "diagnostics", "watch", str(pid), "--duration", duration]
        + ["--out", str(out), "--interval", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=h.REPO,
        env={**os.environ, "PYTHONPATH": str(h.REPO)},
    )


def the_run(out: Path) -> Path:
    """The one run directory a watch made in the runs folder ``out``."""
    (run_dir,) = [path for path in out.iterdir() if path.is_dir()]
    return run_dir


def wait_rows(out: Path, count: int) -> None:
    def enough() -> bool:
        paths = list(out.glob("*/watch/samples.csv"))
        return bool(paths) and len(paths[0].read_text().splitlines()) > count

    h.wait_until(enough, f"{count} rows")


def test_watch_writes_a_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with ZombieHolder(HolderSpec(exits=[0] * 4, alive=1)) as holder:
        result = watch(holder.pid, 0.3, out, interval=0.02)
    assert (result.status, result.run_dir) == ("ok", the_run(out))
    run, scenario, rows = load(result.run_dir)
    assert run.keys() >= RUN_KEYS and scenario.keys() >= SCENARIO_KEYS
    assert (run["kind"], run["exit_status"], run["scenarios"]) == ("watch", "ok", ["watch"])
    assert run["parameters"] == {
        "pid": holder.pid,
        "cmdline": run["parameters"]["cmdline"],
        "duration": 0.3,
        "interval": 0.02,
    }
    assert "bench.holder" in run["parameters"]["cmdline"]
    assert len(run["id"]) == 15 and run["started"] <= run["ended"]
    assert {"python", "kernel", "cpus", "pid_max", "platform", "hostname"} <= run["machine"].keys()
    assert scenario["name"] == "watch" and scenario["strategy"] is None
    assert (scenario["status"], scenario["capped"], scenario["server_pid"]) == (
        "ok",
        False,
        holder.pid,
    )
    assert rows and all((r["zombies"], r["alive"]) == ("4", "1") for r in rows)
    assert len(rows) == result.samples


def test_watch_records_events_beside_the_samples(tmp_path: Path) -> None:
    with ZombieHolder(HolderSpec(exits=[0, 3], alive=1)) as holder:
        result = watch(holder.pid, 0.2, tmp_path, interval=0.02)
    _, scenario, _ = load(result.run_dir)
    rows, notes = read(result.run_dir / "watch" / EVENTS)
    assert notes == [] and result.events is not None
    assert scenario["events"] == json.loads(json.dumps(result.events.to_json()))
    assert sorted((row.origin, row.exit_source, row.exit_code) for row in rows) == [
        ("pre-existing", "", None),
        ("pre-existing", "before-seen", 0),
        ("pre-existing", "before-seen", 3),
    ]
    assert all(row.forked_at is None and row.reaped_at is None for row in rows)
    figures = scenario["events"]["figures"]
    assert (figures["final_live"], figures["final_zombies"]) == (1, 2)
    assert scenario["events"]["pre_existing"] == 3


@pytest.mark.slow  # a real watch subprocess on a real holder: about 2 s
def test_cli_watch_ends_when_the_target_exits(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = ZombieHolder(HolderSpec(exits=[0])).start()
    proc = start_watch(holder.pid, out)
    try:
        wait_rows(out, 2)
        holder.release()
        stdout, stderr = proc.communicate(timeout=h.DEADLINE_S)
    finally:
        holder.release()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    run_dir = the_run(out)
    # The holder reaps its zombie just before it exits: a sample may fall between the two.
    assert stdout.splitlines()[0] in (
        f"PID {holder.pid}: 1 zombie, flat",
        f"PID {holder.pid}: no zombies left; at least 1 zombie at once (sampled)",
    )
    assert stdout.splitlines()[1].startswith("events: 0 children forked, 0 exited, 1 reaped")
    assert "1 there before the watch began (fork time unknown)" in stdout.splitlines()[1]
    assert stdout.splitlines()[2:] == [
        f"report: {run_dir / 'index.html'}",
        f"run directory: {run_dir}",
    ]
    assert (run_dir / "index.html").is_file()
    run, scenario, rows = load(run_dir)
    assert run["exit_status"] == scenario["status"] == "target-exited"
    assert scenario["warnings"] and f"PID {holder.pid} exited" in scenario["warnings"][0]
    counts = [r["zombies"] for r in rows]  # 1 while held; 0 only after the holder's last reap
    assert counts[0] == "1" and set(counts) <= {"0", "1"} and counts == sorted(counts, reverse=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.slow  # a real watch subprocess on a real holder: about 2 s
def test_cli_watch_interrupted_keeps_the_data(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "run"
    with ZombieHolder(HolderSpec(exits=[0, 0])) as holder:
        proc = start_watch(holder.pid, out)
        try:
            wait_rows(out, 3)
            os.kill(proc.pid, signum)
            stdout, stderr = proc.communicate(timeout=h.DEADLINE_S)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "Traceback" not in stderr and "interrupted" in stderr
    run, scenario, rows = load(the_run(out))
    assert run["exit_status"] == scenario["status"] == "interrupted"
    assert run["ended"] is not None
    assert len(rows) >= 3 and all(r["zombies"] == "2" for r in rows)


@pytest.mark.slow  # a real watch and its report: about 3 s
def test_cli_watch_whose_report_the_full_disk_stopped_fails_and_run_json_says_so(
    small_disk: Path,
) -> None:
    with ZombieHolder(HolderSpec(exits=[0])) as holder:
        done = subprocess.run(
            [sys.executable, "-m", "diagnostics", "watch", str(holder.pid), "--duration", "1",
             "--out", str(small_disk)],
            capture_output=True, text=True, timeout=h.DEADLINE_S, cwd=h.REPO,
        )  # fmt: skip
    run_dir = the_run(small_disk)
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("diagnostics watch: the report could not be drawn: ")
    assert "No space left on device" in line and line.endswith(f"; the data is in {run_dir}")
    run, scenario, rows = load(run_dir)
    assert (run["exit_code"], run["exit_status"]) == (1, "error: " + line.split(": ", 1)[1])
    assert scenario["status"] == "ok" and rows  # the watch itself went as asked
    assert not (run_dir / ".reserve").exists()


def test_out_is_a_runs_folder_and_each_watch_gets_its_own_run(tmp_path: Path) -> None:
    first = watch(os.getpid(), 0.05, tmp_path, interval=0.01)
    second = watch(os.getpid(), 0.05, tmp_path, interval=0.01)
    assert first.run_dir != second.run_dir
    assert {first.run_dir.parent, second.run_dir.parent} == {tmp_path}
    assert all((run / "run.json").is_file() for run in (first.run_dir, second.run_dir))


@pytest.mark.parametrize("runner", RUNNERS)
def test_cli_watch_out_that_is_a_file_is_one_line_and_exit_2(
    tmp_path: Path, runner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run directory is made before the first sample, so in-process is safe."""
    (tmp_path / "file").write_text("")
    result = runner_for("diagnostics", runner, capsys)(
        "watch", str(os.getpid()), "--duration", "1", "--out", str(tmp_path / "file")
    )
    assert result.returncode == 2 and result.stderr.startswith("diagnostics: error:")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        [str(h.MISSING_PID), "--duration", "1"],
        ["1", "--duration", "-1"],
        ["1", "--duration", "0"],
        ["1", "--duration", "x"],
        ["1", "--duration", "1", "--interval", "0"],
        ["1"],
    ],
)
@pytest.mark.parametrize("runner", RUNNERS)
def test_cli_watch_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], runner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    result = runner_for("diagnostics", runner, capsys)("watch", *args, "--out", str(out))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("out", ["/proc/x", "a-file"])
@pytest.mark.parametrize("runner", RUNNERS)
def test_cli_watch_an_unwritable_out_is_one_line_and_exit_2(
    tmp_path: Path, out: str, runner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if out == "a-file":
        out = str(tmp_path / "a-file")
        Path(out).write_text("not a directory\n")
    run = runner_for("diagnostics", runner, capsys)
    result = run("watch", str(os.getpid()), "--duration", "1", "--out", out)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert "cannot write a run directory" in result.stderr


def test_run_json_is_a_run_record() -> None:
    """The watch and the harness write run.json through one record: its keys are all there."""
    record = RunRecord(id="x", kind="watch", started=1.0, parameters={}, scenarios=[], machine={})
    data = json.loads(json.dumps(record.to_json()))
    assert RunRecord.from_json({**data, "added_later": 1}) == record
    assert data["exit_status"] == "running" and data["ended"] is None


def test_scenario_json_is_a_scenario_record() -> None:
    """What a watch does not measure stays null, never a 0 that reads as measured."""
    record = ScenarioRecord(name="watch", started=1.0, server_pid=7, samples=3)
    data = json.loads(json.dumps(record.to_json()))
    assert ScenarioRecord.from_json(data) == record
    assert data["peak_zombies"] is None and data["final_sample"] is None


def test_watch_counts_the_children_holding_the_listening_socket(
    start_server, tmp_path: Path
) -> None:
    """A server whose children keep its listening socket: every child in flight is counted
    in samples.csv's listener_holders; a process that listens on nothing leaves it empty."""
    server = start_server("--work-ms", "60000", "--child-keeps-listener")
    conns, _children = slow_requests(server, 2)
    try:
        result = watch(server.pid, 0.2, tmp_path / "listening", interval=0.02)
    finally:
        for conn in conns:
            conn.close()
    rows = load(result.run_dir)[2]
    assert rows and {row["listener_holders"] for row in rows} == {"2"}
    with ZombieHolder(HolderSpec(exits=[0])) as holder:
        result = watch(holder.pid, 0.1, tmp_path / "quiet", interval=0.02)
    assert {row["listener_holders"] for row in load(result.run_dir)[2]} == {""}
