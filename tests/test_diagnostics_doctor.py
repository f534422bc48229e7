"""Doctor: exact counts, each SIGCHLD disposition on a real process, verdicts, the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from bench.holder import Disposition, HolderSpec, ZombieHolder
from diagnostics.doctor import examine, examine_all
from diagnostics.procstatus import sigchld_disposition
from tests import diag_helpers as h
from tests.cli_runner import RUNNERS, runner_for

NEVER_REAPS = (
    "PID {pid} never reaps: 4 zombie children, +0/s, SIGCHLD at default. Install a SIGCHLD "
    "handler that loops waitpid(-1, WNOHANG) until it returns 0, or reap in the main loop."
)
DOCTOR_KEYS = {
    "pid",
    "cmdline",
    "alive",
    "zombies",
    "descendant_zombies",
    "oldest_zombie_s",
    "growth_per_s",
    "exit_codes",
    "sigchld",
    "verdict",
}


@pytest.mark.parametrize(
    ("setting", "expected", "zombies"),
    [
        ("default", "default", 2),
        ("ignore", "ignored", 0),  # the kernel reaped them
        ("handler", "caught", 2),
        ("block", "blocked", 2),
    ],
)
def test_each_sigchld_disposition_is_recognised(
    setting: Disposition, expected: str, zombies: int
) -> None:
    with ZombieHolder(HolderSpec.zombies(2, sigchld=setting)) as holder:
        assert sigchld_disposition(holder.pid) == expected
        report = examine(holder.pid, 0)
        assert (report["sigchld"], report["zombies"]) == (expected, zombies)


def test_blocked_on_one_thread_only_is_not_blocked() -> None:
    """The other thread can take the signal, so this is the default disposition."""
    with ZombieHolder(HolderSpec(exits=[0], sigchld="block", threads=1)) as holder:
        assert sigchld_disposition(holder.pid) == "default"


def test_report_counts_ages_and_exit_codes() -> None:
    with ZombieHolder(HolderSpec(exits=[0, 0, 1, -9], alive=2, middles=[3])) as holder:
        report = examine(holder.pid, 0)
    assert report.keys() >= DOCTOR_KEYS
    assert (report["alive"], report["zombies"], report["descendant_zombies"]) == (3, 4, 3)
    assert report["exit_codes"] == {"0": 2, "1": 1, "SIGKILL": 1}
    assert report["oldest_zombie_s"] >= 0
    assert report["growth_per_s"] is None and report["pid1"] is False
    assert "bench.holder" in report["cmdline"]
    assert report["verdict"].startswith(f"PID {holder.pid} holds 4 zombie children, SIGCHLD at")


def test_watch_tells_a_parent_that_never_reaps() -> None:
    with ZombieHolder(HolderSpec.zombies(4)) as holder:
        report = examine(holder.pid, 0.2)
    assert (report["growth_per_s"], report["reaped_during_watch"]) == (0.0, 0)
    assert report["verdict"] == NEVER_REAPS.format(pid=holder.pid)


def test_caught_but_not_reaped_verdict_names_the_handler_fix() -> None:
    with ZombieHolder(HolderSpec.zombies(3, sigchld="handler")) as holder:
        verdict = examine(holder.pid, 0)["verdict"]
    assert "caught by a handler" in verdict and "signals are not queued" in verdict


def test_no_zombies_and_deeper_zombies_verdicts() -> None:
    with ZombieHolder(HolderSpec(alive=2)) as clean, ZombieHolder(HolderSpec(middles=[2])) as deep:
        assert examine(clean.pid, 0)["verdict"] == "no zombies"
        report = examine(deep.pid, 0)
    assert (report["zombies"], report["descendant_zombies"]) == (0, 2)
    assert "descendants hold 2" in report["verdict"]


def test_pid1_of_the_namespace_is_recognised() -> None:
    assert examine(1, 0)["pid1"] is True


def test_all_groups_zombies_by_parent_most_first() -> None:
    with ZombieHolder(HolderSpec.zombies(3)) as few, ZombieHolder(HolderSpec.zombies(5)) as many:
        parents = examine_all(0)
    ours = [p for p in parents if p["pid"] in (few.pid, many.pid)]
    assert [(p["pid"], p["zombies"]) for p in ours] == [(many.pid, 5), (few.pid, 3)]
    assert all(p["zombies"] > 0 for p in parents)
    assert [p["zombies"] for p in parents] == sorted((p["zombies"] for p in parents), reverse=True)


@pytest.mark.parametrize("runner", RUNNERS)
def test_cli_json_and_fail_on_zombies(runner: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli = runner_for("diagnostics", runner, capsys)
    with ZombieHolder(HolderSpec.zombies(3)) as holder:
        pid = str(holder.pid)
        out = run_cli("doctor", pid, "--json", "--watch", "0")
        failing = run_cli("doctor", pid, "--watch", "0", "--fail-on-zombies", "3")
        passing = run_cli("doctor", pid, "--watch", "0", "--fail-on-zombies", "4")
        every = run_cli("doctor", "--all", "--json", "--watch", "0")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report.keys() >= DOCTOR_KEYS and report["zombies"] == 3
    assert failing.returncode == 1 and "verdict: PID" in failing.stdout
    assert passing.returncode == 0
    parents = json.loads(every.stdout)["parents"]
    assert {"pid": holder.pid, "zombies": 3}.items() <= next(
        p for p in parents if p["pid"] == holder.pid
    ).items()


@pytest.mark.parametrize(
    "args",
    [
        ["doctor", str(h.MISSING_PID)],
        ["doctor", "abc"],
        ["doctor", "0"],
        ["doctor"],
        ["doctor", str(os.getpid()), "--all"],
        ["doctor", "1", "--watch", "-1"],
        ["doctor", "1", "--fail-on-zombies", "0"],
        ["doctor", "1", "--bogus"],
        [],
    ],
)
@pytest.mark.parametrize("runner", RUNNERS)
def test_cli_bad_input_is_one_line_and_exit_2(
    args: list[str], runner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = runner_for("diagnostics", runner, capsys)(*args)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("diagnostics: error: ")


# A parent whose one child starts a thread and then ends its main thread alone (the raw
# exit system call), so the child shows as "Zl" while the thread runs. The thread ends
# when the parent's stdin closes (the parent then exits too); the child's PID is printed.
MAIN_THREAD_EXITS = r"""
import ctypes, os, sys, threading

SYS_EXIT = {"x86_64": 60, "aarch64": 93}[os.uname().machine]
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    threading.Thread(target=lambda: os.read(r, 1) or os._exit(0)).start()
    ctypes.CDLL(None).syscall(SYS_EXIT, 0)  # this thread only, unlike exit_group
os.close(r)
print(pid, flush=True)
sys.stdin.buffer.read()
os.close(w)
os.waitpid(pid, 0)
"""


@pytest.fixture
def main_thread_exited() -> Iterator[tuple[int, int]]:
    """(parent PID, child PID) with the child in state Z and one thread still running."""
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("the raw exit system call number is known here for x86_64 and aarch64")
    parent = h.spawn(MAIN_THREAD_EXITS)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        h.wait_until(lambda: _state(child) == "Z", what="the child's main thread to exit")
        yield parent.pid, child
    finally:
        h.end_by_stdin(parent)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_a_process_whose_main_thread_exited_is_alive_not_a_zombie(main_thread_exited) -> None:
    parent, child = main_thread_exited
    report = examine(parent, 0.1)
    assert (report["alive"], report["zombies"]) == (1, 0)
    assert report["main_thread_exited"] == [{"pid": child, "threads": 1}]
    assert report["verdict"].startswith("no zombies; ")
    assert f"PID {child} shows as a zombie (ps: Zl) but is alive" in report["verdict"]
    assert "main thread exited, 1 thread still running" in report["verdict"]
    assert "waitpid(-1" not in report["verdict"]  # no reaping advice: there is nothing to reap
    assert parent not in [p["pid"] for p in examine_all(0)]


def test_doctor_on_such_a_process_says_it_is_alive(main_thread_exited) -> None:
    _parent, child = main_thread_exited
    result = h.run_cli("doctor", str(child))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"diagnostics: error: PID {child} is alive, not a zombie: main thread exited, 1 thread"
        " still running (ps shows Zl; waitpid returns 0 for it until the last one ends, so"
        " there is nothing to reap yet)"
    )
