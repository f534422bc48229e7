"""``pytest --child-leaks``: a throwaway suite that leaks on purpose, run by a real pytest.

The inner pytest runs as a subprocess in its own session, so that whatever it
leaves (on purpose) is one process group this test reaps afterwards: the held
children exit once the inner pytest has gone (their pipes close), and come to
this pytest, the subreaper.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server_helpers import reap_group

# Each test runs a whole inner pytest (about 0.7 s): `make test` runs them, not test-fast.
pytestmark = pytest.mark.slow

LEAKY_SUITE = r"""
import os, subprocess, sys
from pathlib import Path

import pytest

HELD = []  # what keeps the held children alive until this pytest process ends
HOLD = "import os, sys; print(os.getpid(), flush=True); sys.stdin.read()"


def note(name, pid):
    Path(os.environ["PID_DIR"], name).write_text(str(pid))


def test_leaves_a_zombie():
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, and left unreaped
    note("zombie", pid)


def hold_a_child(name):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, "held-child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert int(proc.stdout.readline()) == proc.pid  # running, past its exec
    HELD.append(proc)
    note(name, proc.pid)


def test_leaves_a_running_child():
    hold_a_child("running")


def test_child_double_forks_and_exits():
    read_end, write_end = os.pipe()
    HELD.append(write_end)
    middle = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', {HOLD!r}, 'orphan-grandchild'])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", middle], stdin=read_end, stdout=subprocess.PIPE)
    os.close(read_end)
    orphan = int(proc.stdout.readline())  # the grandchild, running, past its exec
    assert proc.wait() == 0
    note("orphan", orphan)


def test_cleans_up():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    assert proc.wait() == 0
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


@pytest.mark.child_leaks("off")
def test_marked_off_leaves_a_running_child():
    hold_a_child("marked-off")
"""

OUTCOME = re.compile(r"(\d+) (passed|failed|errors?|warnings?)")


class InnerRun:
    def __init__(self, output: str, returncode: int, pid_dir: Path) -> None:
        self.output = output
        self.returncode = returncode
        self.pid_dir = pid_dir

    def outcomes(self) -> dict[str, int]:
        last = self.output.strip().splitlines()[-1]
        found = {kind.rstrip("s"): int(n) for n, kind in OUTCOME.findall(last)}
        return {kind: found[kind] for kind in ("passed", "failed", "error") if kind in found}

    def pid(self, name: str) -> str:
        return (self.pid_dir / name).read_text()


def run_inner(tmp_path: Path, *args: str) -> InnerRun:
    """pytest on LEAKY_SUITE in its own session; afterwards reap whatever it left."""
    (tmp_path / "test_leaky.py").write_text(LEAKY_SUITE)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PID_DIR": str(pid_dir)},
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
        reap_group(proc.pid)
    return InnerRun(output, proc.returncode, pid_dir)


def test_off_by_default_every_test_passes(tmp_path: Path) -> None:
    run = run_inner(tmp_path)
    assert run.outcomes() == {"passed": 5}, run.output
    assert "behind" not in run.output


def test_fail_errors_each_leaky_test_and_names_the_processes(tmp_path: Path) -> None:
    run = run_inner(tmp_path, "--child-leaks=fail")
    assert run.outcomes() == {"passed": 5, "error": 3}, run.output
    assert run.returncode == 1
    errors = set(re.findall(r"ERROR at teardown of (\w+)", run.output))
    assert errors == {
        "test_leaves_a_zombie",
        "test_leaves_a_running_child",
        "test_child_double_forks_and_exits",
    }
    zombie, running, orphan = (run.pid(name) for name in ("zombie", "running", "orphan"))
    assert re.search(rf"PID {zombie} zombie, exit status 3 \(now reaped\): \[\S+\]", run.output)
    assert re.search(
        rf"PID {running} still running \(state [SR]\): \S+ -c .* held-child", run.output
    )
    assert re.search(
        rf"PID {orphan} still running \(state [SR]\): \S+ -c .* orphan-grandchild", run.output
    )
    assert "test_marked_off" not in run.output


def test_warn_reports_the_same_leaks_and_fails_nothing(tmp_path: Path) -> None:
    run = run_inner(tmp_path, "--child-leaks=warn")
    assert run.outcomes() == {"passed": 5}, run.output
    assert run.returncode == 0
    assert run.output.count("ChildLeakWarning: ") == 3
    assert f"PID {run.pid('zombie')} zombie, exit status 3" in run.output
    assert f"PID {run.pid('running')} still running" in run.output
    assert f"PID {run.pid('orphan')} still running" in run.output


def test_a_marker_turns_the_check_on_for_one_test(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n"
        "def pytest_collection_modifyitems(items):\n"
        "    for item in items:\n"
        "        if item.name == 'test_leaves_a_zombie':\n"
        "            item.add_marker(pytest.mark.child_leaks('fail'))\n"
    )
    run = run_inner(tmp_path)
    assert run.outcomes() == {"passed": 5, "error": 1}, run.output
    assert "ERROR at teardown of test_leaves_a_zombie" in run.output


def test_a_bad_marker_mode_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n"
        "def pytest_collection_modifyitems(items):\n"
        "    items[0].add_marker(pytest.mark.child_leaks('loud'))\n"
    )
    run = run_inner(tmp_path, "-k", "cleans_up or zombie")
    assert "child_leaks('loud'): choose off, warn or fail" in run.output
    assert run.returncode != 0


@pytest.mark.parametrize("mode", ["fail", "warn"])
def test_a_session_fixture_child_is_not_a_leak(tmp_path: Path, mode: str) -> None:
    (tmp_path / "conftest.py").write_text(
        "import subprocess, sys\n"
        "import pytest\n\n"
        "@pytest.fixture(scope='session', autouse=True)\n"
        "def server():\n"
        "    proc = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],\n"
        "                            stdin=subprocess.PIPE)\n"
        "    yield\n"
        "    proc.stdin.close()\n"
        "    proc.wait()\n"
    )
    run = run_inner(tmp_path, f"--child-leaks={mode}", "-k", "cleans_up")
    assert run.outcomes() == {"passed": 1}, run.output
    assert "behind" not in run.output
