"""The harness with the server as PID 1 of a PID namespace, as in a container (issue 23).

Each test runs ``python -m loadtest`` as a user would and reads what a user reads
(summary.json's verdicts and figures, scenario.json), on real processes: the
orphan-making server as PID 1 without an init, under dumb-init and under tini, and a
server that never waits under tini. Skipped, with the reason, where no PID namespace
(or the init) can be had.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from loadtest import pidns
from loadtest.scenarios import CONTAINERS, SCENARIOS
from tests.cli_runner import RUNNERS, assert_one_line_error, runner_for
from tests.pidns_helpers import ROOT, need, zombie_children
from tests.test_loadtest_harness import (
    harness_in_background,
    read_json,
    run_dir,
    run_harness,
    wait_for_load,
)
from tests.waiting import wait_until


def need_every_init() -> None:
    for init in pidns.INITS:
        need(init)


def assert_namespace_gone(record: dict[str, Any]) -> None:
    """The holder, PID 1 and the server are gone, and the cgroup that held them all (it
    can be removed only once empty)."""
    for key in ("holder", "pid1", "server"):
        pid = record["pid1"][key]
        assert not psutil.pid_exists(pid), f"{key} {pid} of {record['name']} still exists"
    if record.get("cgroup"):
        assert not Path(record["cgroup"]["path"]).exists(), "the cgroup was not removed"


@pytest.mark.slow
def test_containers_orphans_pile_up_at_pid1_only_without_an_init(tmp_path: Path) -> None:
    need_every_init()
    result = run_harness(tmp_path, "--containers", "--duration", "3", "--zombie-cap", "1000")
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    summary = {s["name"]: s for s in read_json(run / "summary.json")["scenarios"]}
    assert list(summary) == list(CONTAINERS)
    for name, scenario in summary.items():
        record = read_json(run / name / "scenario.json")
        assert scenario["status"] == "ok", scenario["warnings"]
        assert all(check["ok"] for check in scenario["checks"]), scenario["checks"]
        assert scenario["pid1"]["init"] == SCENARIOS[name].init
        assert scenario["requests"] > 0 and scenario["failures"] == 0
        assert scenario["forked"] == scenario["requests"]
        assert_namespace_gone(record)

    # No init: every request leaves an orphan, handed to PID 1, the server, which reaps its
    # own children only: the orphans stay, one per request, all held by PID 1.
    alone = summary["pid1-no-init"]
    assert alone["pid1"]["pid1"] == alone["pid1"]["server"]
    assert alone["reaped"] == alone["forked"]
    assert alone["final_zombies"] == alone["forked"] and alone["final_descendant_zombies"] == 0
    forked, pid = alone["forked"], alone["pid1"]["pid1"]
    # From the event record: its own children each reaped, the orphans told apart.
    assert alone["zombies_from"] == "events"
    assert alone["verdict"].startswith(
        "as PID 1 of its PID namespace, without an init: reaps every child:"
        f" {forked:,} exited, all reaped"
    )
    assert alone["verdict"].endswith(
        f"; {forked:,} orphans it was handed as PID 1 left as zombies, held by PID 1, the"
        f" server itself (host PID {pid}): an init would reap them"
    )

    # Either init reaps them: nothing left anywhere in the namespace.
    for name, init in (("pid1-dumb-init", "dumb-init"), ("pid1-tini", "tini")):
        behind = summary[name]
        assert behind["final_zombies"] == behind["final_descendant_zombies"] == 0
        assert behind["zombie_holders"] == []
        assert behind["verdict"].startswith(
            f"under {init} as PID 1 of its PID namespace: reaps every child:"
            f" {behind['forked']:,} exited, all reaped"
        )
        assert (
            f"; {behind['forked']:,} orphans adopted and reaped by {init} (PID 1, host PID"
            f" {behind['pid1']['pid1']})"
        ) in behind["verdict"]
        assert "prefork pool" not in behind["verdict"]  # the init's one child is the server

    # A parent that never waits: the init reaps the orphans, but the server's own children
    # stay, one per request, held by the server (PID 2 inside), which no init can help.
    stuck = summary["pid1-tini-no-reaper"]
    (holder,) = stuck["zombie_holders"]
    assert holder["pid"] == stuck["pid1"]["server"] and holder["nspid"] == 2
    assert stuck["final_zombies"] == 0  # tini, PID 1, holds none
    assert stuck["final_descendant_zombies"] == holder["zombies"] == stuck["forked"]
    assert stuck["verdict"].startswith(
        f"under tini as PID 1 of its PID namespace: never reaps: all {stuck['forked']:,}"
        " children that exited left as zombies, held by PID"
    )
    assert "the server itself, under tini: their parent is alive" in stuck["verdict"]
    assert f"; {stuck['forked']:,} orphans adopted and reaped by tini" in stuck["verdict"]


@pytest.mark.slow
def test_an_external_server_as_pid1_deaf_to_sigterm_is_killed_and_the_record_says_so(
    tmp_path: Path,
) -> None:
    need()
    server = f"{sys.executable} -m http.server --bind 127.0.0.1 {{port}}"
    result = run_harness(
        tmp_path, "--pid1", "--server-cmd", f"plain={server}", "--path", "/", "--duration", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = read_json(run_dir(tmp_path) / "plain" / "scenario.json")
    assert record["pid1"]["init"] == "none" and record["server_pid"] == record["pid1"]["pid1"]
    assert any("has no SIGTERM handler" in w and "exit 137" in w for w in record["warnings"])
    assert_namespace_gone(record)


@pytest.mark.slow
def test_ctrl_c_during_a_pid1_run_ends_the_whole_namespace(tmp_path: Path) -> None:
    need()
    with harness_in_background(tmp_path, "--scenarios", "pid1-no-init") as proc:
        pid1 = wait_for_load(tmp_path, "pid1-no-init")["pid1"]["pid1"]
        wait_until(
            lambda: len(zombie_children(pid1)) >= 20, what="20 orphans held by PID 1", timeout=60
        )
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    record = read_json(run_dir(tmp_path) / "pid1-no-init" / "scenario.json")
    assert record["status"] == "interrupted"
    assert not psutil.pid_exists(record["locust_pid"])
    assert_namespace_gone(record)


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--init", "tini"], "--init goes with --pid1"),
        (["--containers", "--pid1"], "--pid1: pid1-no-init already runs its server as PID 1"),
        (["--containers", "--all"], "not allowed with argument --containers"),
        (["--containers", "--server-cmd", "x {port}"], "--server-cmd runs only the servers"),
    ],
)
def test_bad_pid1_flags_are_one_line_and_exit_2(
    args: list[str], fragment: str, runner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_one_line_error(runner_for("loadtest", runner, capsys)(*args), fragment)


def test_a_missing_init_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no tini on it
    run = runner_for("loadtest", "in-process", capsys)
    assert_one_line_error(
        run("--pid1", "--init", "tini", "--out", str(tmp_path)),
        "--pid1: tini is not installed (Debian: apt-get install tini)",
    )
    assert_one_line_error(
        run("--scenarios", "pid1-tini", "--out", str(tmp_path)),
        "pid1-tini: tini is not installed",
    )
    assert list(tmp_path.iterdir()) == []  # no run directory was made


@pytest.mark.parametrize("flags", [["--containers"], ["--pid1", "--reaper", "loop"]])
def test_without_cap_sys_admin_pid1_is_one_line_and_exit_2(
    flags: list[str], tmp_path: Path
) -> None:
    """Root without its capabilities, as in an unprivileged container."""
    setpriv = ["setpriv", "--bounding-set", "-all", "--inh-caps", "-all"]
    try:
        result = subprocess.run(
            [*setpriv, sys.executable, "-m", "loadtest", *flags, "--out", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        pytest.skip("setpriv (util-linux) is not installed")
    if "setpriv:" in result.stderr:
        pytest.skip(f"cannot drop capabilities here: {result.stderr.strip()}")
    assert_one_line_error(result, "cannot make a new PID namespace (it needs root: CAP_SYS_ADMIN)")
    assert list(tmp_path.iterdir()) == []
