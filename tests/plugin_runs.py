"""A throwaway suite under ``--child-leaks``, run by a real pytest of its own.

The inner pytest runs as a subprocess in its own session, so that whatever it
leaves behind (on purpose) is one process group: once the inner pytest has
exited (and before it is reaped, so the group's ID cannot be handed out again)
the group is killed, and what comes back to this pytest, the subreaper, is
reaped. Its output goes to a file, not a pipe: a forked child keeps pytest's
saved copies of stdout, and a pipe would not end before the child does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server_helpers import reap_group
from tests.waiting import wait_until

SUITE_TIMEOUT_S = 120.0
CI_VARIABLES = ("CI", "BUILD_NUMBER")
"""Where either is set, pytest prints each failure's whole message again in its short
summary: the inner suite's output would then depend on where the tests run."""


@dataclass
class SuiteRun:
    result: pytest.RunResult
    pid_dir: Path

    @property
    def output(self) -> str:
        return str(self.result.stdout)

    def pid(self, name: str) -> int:
        """A PID the inner suite wrote down (``note(name, pid)``)."""
        return int((self.pid_dir / name).read_text())


def run_suite(pytester: pytest.Pytester, *args: str) -> SuiteRun:
    """pytest on the files of ``pytester.path``, in its own session; then end what it left."""
    pid_dir = pytester.path / "pids"
    pid_dir.mkdir(exist_ok=True)
    log = pytester.path / "inner-output.txt"
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=pytester.path,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={
                **{name: value for name, value in os.environ.items() if name not in CI_VARIABLES},
                "PID_DIR": str(pid_dir),
            },
            start_new_session=True,
        )
    try:
        wait_until(lambda: _exited(proc.pid), "the inner pytest to end", SUITE_TIMEOUT_S)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its leader unreaped: the group is still ours
        except ProcessLookupError:
            pass
        proc.wait()
        reap_group(proc.pid)
    lines = log.read_text().splitlines()
    result = pytest.RunResult(proc.returncode, lines, [], time.monotonic() - started)
    return SuiteRun(result, pid_dir)


def end_adopted(pid: int) -> None:
    """End and reap a process of an inner suite that left its process group (pty.fork
    makes a new session) and came back to this pytest, the subreaper; nothing if it is
    not our child (then its PID may name another process by now)."""
    try:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            os.kill(pid, signal.SIGKILL)  # our child, running: the PID is still its own
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _exited(pid: int) -> bool:
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None


NOTE = '''import os
from pathlib import Path


def note(name, pid):
    """Write a PID down for the outer test to check the report against."""
    Path(os.environ["PID_DIR"], name).write_text(str(pid))
'''
"""The helper every inner suite starts with (prepend it to the suite's source). It starts
with no blank line: pytester.makepyfile strips them, which would shift every line number."""


def line_of(source: str, marker: str) -> int:
    """The line number (1-based) of the line of ``source`` that ends with ``# marker``."""
    for number, line in enumerate(source.splitlines(), 1):
        if line.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(f"no line marked {marker!r}")


def teardown_errors(output: str) -> set[str]:
    """The tests that errored at teardown (the plugin's failures)."""
    return set(re.findall(r"ERROR at teardown of (\w+)", output))
