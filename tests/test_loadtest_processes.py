"""How the harness ends what it started (loadtest/processes.py), on real processes.

One SIGTERM and a grace, then SIGKILL; a frozen process resumed so that it can act on its
SIGTERM; what the tree left running ended and named; each signal traced.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from loadtest.processes import ManagedProcess, end_leftovers, own_children
from loadtest.trace import TRACE
from tests.waiting import wait_until

IGNORES_TERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('up', flush=True)\n"
    "time.sleep(60)\n"
)
COUNTS_TERMS = (
    "import signal, sys, time\n"
    "def term(*_):\n"
    "    print('TERM', flush=True)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, term)\n"
    "print('up', flush=True)\n"
    "time.sleep(60)\n"
)


def start(tmp_path: Path, code: str) -> ManagedProcess:
    process = ManagedProcess("test", [sys.executable, "-c", code], tmp_path / "log", tmp_path)
    wait_until(lambda: "up" in (tmp_path / "log").read_text(), what="the process to start")
    return process


def test_a_process_that_ignores_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    process = start(tmp_path, IGNORES_TERM)
    stopped = process.stop(grace=0.5)
    assert stopped.signals == ("SIGTERM", "SIGKILL") and stopped.killed
    assert stopped.waited_s >= 0.5 and stopped.ended == "killed by SIGKILL"
    assert process.stop(grace=5) is stopped  # asked again: what was done, not done again


def test_a_frozen_process_gets_one_sigterm_and_acts_on_it(tmp_path: Path) -> None:
    process = start(tmp_path, COUNTS_TERMS)
    process.signal_group(signal.SIGSTOP, "freeze")
    wait_until(lambda: psutil.Process(process.pid).status() == "stopped", what="stopped")
    stopped = process.stop(grace=10, resume=True)
    assert stopped.signals == ("SIGTERM",) and not stopped.killed
    assert stopped.ended == "exited 0"
    assert (tmp_path / "log").read_text().count("TERM") == 1


def test_a_process_that_ended_by_itself_gets_no_signal(tmp_path: Path) -> None:
    process = ManagedProcess("test", [sys.executable, "-c", "pass"], tmp_path / "log", tmp_path)
    process.wait(30)
    stopped = process.stop(grace=5)
    assert stopped.signals == () and stopped.ended == "exited 0"


@pytest.mark.child_leaks("off")  # this test makes the pytest process adopt on purpose
def test_what_a_tree_left_running_is_ended_and_named(tmp_path: Path) -> None:
    # A launcher that double-forks a sleeper into a session of its own and exits: the
    # sleeper is in no process group the test knows; only the subreaper sees it.
    from diagnostics.subreaper import become_subreaper

    if not become_subreaper():
        pytest.skip("cannot become a child subreaper")
    before = own_children()
    launcher = subprocess.run(
        [sys.executable, "-c",
         "import os, subprocess\n"
         "if os.fork() == 0:\n"
         "    os.setsid()\n"
         "    q = subprocess.DEVNULL\n"
         "    print(subprocess.Popen(['sleep', '300'], stdout=q, stderr=q).pid, flush=True)\n"
         "    os._exit(0)\n"
         "os.wait()\n"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    sleeper = int(launcher.stdout.split()[0])
    wait_until(lambda: sleeper in own_children(), what="the sleeper to be adopted")
    (left,) = end_leftovers(before, sessions=[])
    assert (left.pid, left.command) == (sleeper, "sleep 300")
    assert not psutil.pid_exists(sleeper)
    assert end_leftovers(before, sessions=[]) == []


def test_the_trace_is_written_only_when_asked(tmp_path: Path) -> None:
    TRACE("nothing: the trace is off")
    log = tmp_path / "harness.log"
    TRACE.start(log)
    try:
        process = start(tmp_path, IGNORES_TERM)
        process.stop(grace=0.2)
    finally:
        TRACE.stop()
    TRACE("nothing again")
    text = log.read_text()
    assert f"process {process.pid} (test) started: {sys.executable} -c" in text
    assert f"signal SIGTERM -> {process.pid} (test: stop)" in text
    assert (
        f"signal SIGKILL -> group {process.pid} (test: still running 0.2 s after SIGTERM)" in text
    )
    assert f"process {process.pid} (test) ended: killed by SIGKILL" in text
    assert "nothing" not in text and os.getpid() > 0
