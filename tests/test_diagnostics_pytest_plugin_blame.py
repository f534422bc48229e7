"""``pytest --child-leaks``: each child is counted against the test that started it, by its
spawn record, not the test it was first seen in: a thread test A left running that
starts a child during test B fails nothing; the child is reported at the end of the
run, naming A, the thread and the line. Serially and under xdist (``-n 2``).
"""

from __future__ import annotations

import pytest

from tests.plugin_runs import NOTE, line_of, run_suite, teardown_errors

pytest_plugins = ("pytester",)

pytestmark = pytest.mark.slow  # a whole inner pytest each

LATE = (
    NOTE
    + r"""
import subprocess, sys, threading

GO = threading.Event()
SPAWNED = threading.Event()
HOLD = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"
MIDDLE = (
    "import os, sys\n"
    "if os.fork() == 0:\n"
    f"    os.execv(sys.executable, [sys.executable, '-c', {HOLD!r}, 'late-orphan'])\n"
)
HELD = []


def spawn_when_told():
    GO.wait()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, "late-child"])  # site: late
    HELD.append(proc)
    note("late", proc.pid)
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE], stdout=subprocess.PIPE)
    note("orphan", int(middle.stdout.readline()))  # past its exec
    middle.wait()  # reaped: its child comes back to pytest, with no spawn record
    SPAWNED.set()


def test_a_leaves_a_thread():
    threading.Thread(target=spawn_when_told, name="late-spawner", daemon=True).start()


def test_b_innocent():
    GO.set()
    assert SPAWNED.wait(60)


def test_c_own_thread():
    def spawn():
        HELD.append(subprocess.Popen([sys.executable, "-c", HOLD, "own-child"]))  # site: own

    thread = threading.Thread(target=spawn, name="own-spawner")
    thread.start()
    thread.join()


def test_d_clean():
    pass
"""
)

OTHER = """
def test_x():
    pass


def test_y():
    pass
"""


def check_late_report(run_output: str, late: int, orphan: int, worker: str = "") -> None:
    section = run_output[run_output.index("left behind by the test run") :]
    prefix = f"[{worker}] " if worker else ""
    site = line_of(LATE, "site: late")
    expected = [
        f"  {prefix}PID {late} still running (state ",
        "    owned by its subprocess.Popen",
        f"    started by subprocess.Popen at test_late.py:{site} in spawn_when_told",
        "    started during test_late.py::test_b_innocent by thread 'late-spawner', "
        "which test_late.py::test_a_leaves_a_thread left running",
    ]
    for line in expected:
        assert line in section, f"{line!r} not in\n{section}"
    assert f"{prefix}PID {orphan} still running" in section
    assert (
        "    no spawn record (adopted by pytest, the subreaper, after its parent exited, or "
        "started by C code): it started during test_late.py::test_b_innocent, by its start time"
    ) in section


def test_a_leftover_thread_child_fails_no_innocent_test_and_is_the_runs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_late=LATE)
    run = run_suite(pytester, "--child-leaks=fail")
    # test_b is not failed for the child A's thread started while it ran, nor for that
    # child's orphan; test_c is failed for the child of the thread it started itself.
    run.result.assert_outcomes(passed=4, errors=1)
    assert teardown_errors(run.output) == {"test_c_own_thread"}
    run.result.stdout.fnmatch_lines(
        [
            f"    started by subprocess.Popen at test_late.py:{line_of(LATE, 'site: own')}"
            " in test_c_own_thread.<locals>.spawn",
            "    started by thread 'own-spawner', which the test started",
        ]
    )
    check_late_report(run.output, run.pid("late"), run.pid("orphan"))
    assert run.result.ret == 1  # the run's leaks fail the run
    run.result.stdout.fnmatch_lines(["*4 passed, 1 error, 2 leaked children*"])


def test_warn_reports_the_runs_leaks_and_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_late=LATE)
    run = run_suite(pytester, "--child-leaks=warn")
    run.result.assert_outcomes(passed=4, warnings=1)
    check_late_report(run.output, run.pid("late"), run.pid("orphan"))
    assert run.result.ret == 0


def test_under_xdist_each_worker_reports_its_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_late=LATE, test_other=OTHER)
    run = run_suite(pytester, "--child-leaks=fail", "-n", "2", "--dist", "loadfile")
    run.result.assert_outcomes(passed=6, errors=1)
    assert teardown_errors(run.output) == {"test_c_own_thread"}
    worker = next(w for w in ("gw0", "gw1") if f"[{w}] PID {run.pid('late')}" in run.output)
    check_late_report(run.output, run.pid("late"), run.pid("orphan"), worker)
    assert run.result.ret == 1


AFTER_THE_LAST = (
    NOTE
    + r"""
import subprocess, sys, threading

import pytest

GO = threading.Event()
SPAWNED = threading.Event()
HELD = []


def spawn_when_told():
    GO.wait()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    HELD.append(proc)
    note("late", proc.pid)
    SPAWNED.set()


@pytest.fixture(scope="session", autouse=True)
def release_the_thread_at_the_end():
    yield
    GO.set()
    assert SPAWNED.wait(60)


@pytest.fixture(scope="session")
def server():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # site: server
    note("server", proc.pid)
    return proc  # and never ended


def test_a_leaves_a_thread(server):
    threading.Thread(target=spawn_when_told, name="late-spawner", daemon=True).start()


def test_b():
    pass
"""
)


@pytest.mark.parametrize("xdist", [[], ["-n", "2", "--dist", "loadfile"]], ids=["serial", "n2"])
def test_children_started_between_tests_are_the_runs(
    pytester: pytest.Pytester, xdist: list[str]
) -> None:
    pytester.makepyfile(test_after=AFTER_THE_LAST)
    run = run_suite(pytester, "--child-leaks=fail", *xdist)
    run.result.assert_outcomes(passed=2)
    between = "between tests (at collection, or by a session/module fixture or a hook)"
    server_line = line_of(AFTER_THE_LAST, "site: server")
    run.result.stdout.fnmatch_lines(
        [
            "*left behind by the test run*",
            "2 child process(es) that no test was charged with are still here at the end of the "
            "run (the run fails: --child-leaks=fail):",
        ]
    )
    worker = "[[]gw?[]] " if xdist else ""
    run.result.stdout.fnmatch_lines(
        [
            f"  {worker}PID {run.pid('server')} still running *",
            "    owned by its subprocess.Popen",
            f"    started by subprocess.Popen at test_after.py:{server_line} in server",
            "        proc = subprocess.Popen(*",
            f"    started {between}",
        ]
    )
    run.result.stdout.fnmatch_lines(
        [
            f"  {worker}PID {run.pid('late')} still running *",
            "*",
            "*",
            "*",
            f"    started {between} by thread 'late-spawner', "
            "which test_after.py::test_a_leaves_a_thread left running",
        ]
    )
    assert run.result.ret == 1
