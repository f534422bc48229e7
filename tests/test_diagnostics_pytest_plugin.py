"""``pytest --child-leaks``: modes, markers, what a leak report says, and where each child
was started, on throwaway suites that leak on purpose, run by a real pytest
(tests.plugin_runs).
"""

from __future__ import annotations

import typing

import pytest

from tests.plugin_runs import NOTE, end_adopted, line_of, run_suite, teardown_errors

pytest_plugins = ("pytester",)

# Each test runs a whole inner pytest (about 0.7 s): `make test` runs them, not test-fast.
pytestmark = pytest.mark.slow

LEAKY_SUITE = (
    NOTE
    + r"""
import subprocess, sys

import pytest

HELD = []
HOLD = "import time; time.sleep(120)"


def test_leaves_a_zombie():
    pid = os.fork()  # site: zombie
    if pid == 0:
        os._exit(3)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, and left unreaped
    note("zombie", pid)


def hold_a_child(name):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, name])  # site: popen
    HELD.append(proc)
    note(name, proc.pid)


def test_leaves_a_running_child():
    hold_a_child("held-child")  # site: caller


def test_child_double_forks_and_exits():
    orphan = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"
    middle = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', {orphan!r}, 'orphan-grandchild'])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", middle], stdout=subprocess.PIPE)
    note("orphan", int(proc.stdout.readline()))  # the grandchild, past its exec
    assert proc.wait() == 0  # the middle one is reaped; its child comes back to pytest


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
)

LEAKY_TESTS = {
    "test_leaves_a_zombie",
    "test_leaves_a_running_child",
    "test_child_double_forks_and_exits",
}


def test_off_by_default_every_test_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY_SUITE)
    run = run_suite(pytester)
    run.result.assert_outcomes(passed=5)
    assert "behind" not in run.output


def test_fail_errors_each_leaky_test_and_says_where_it_started(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_leaky=LEAKY_SUITE)
    run = run_suite(pytester, "--child-leaks=fail")
    run.result.assert_outcomes(passed=5, errors=3)
    assert run.result.ret == 1
    assert teardown_errors(run.output) == LEAKY_TESTS
    zombie, held = run.pid("zombie"), run.pid("held-child")
    popen_line, caller_line = (
        line_of(LEAKY_SUITE, "site: popen"),
        line_of(LEAKY_SUITE, "site: caller"),
    )
    run.result.stdout.fnmatch_lines(
        [
            f"  PID {zombie} zombie, exit status 3: [[]*[]]",
            "    reaped now: nothing else in the process owned it",
            f"    started by os.fork at test_leaky.py:{line_of(LEAKY_SUITE, 'site: zombie')}"
            " in test_leaves_a_zombie",
            "        pid = os.fork()  # site: zombie",
        ]
    )
    run.result.stdout.fnmatch_lines(
        [
            f"  PID {held} still running (state [SR]): * -c * held-child",
            "    owned by its subprocess.Popen",
            f"    started by subprocess.Popen at test_leaky.py:{popen_line} in hold_a_child",
            "        proc = subprocess.Popen(*)  # site: popen",
            f"    called from the test at test_leaky.py:{caller_line} in test_leaves_a_running*",
        ]
    )
    # The orphan was not started by pytest: no spawn record, placed by its start time.
    run.result.stdout.re_match_lines(
        [
            rf"  PID {run.pid('orphan')} still running \(state [SR]\): \S+ -c .* orphan-grandchild",
            r"    no spawn record \(adopted by pytest, the subreaper, after its parent exited, "
            r"or started by C code\): it started during "
            r"test_leaky.py::test_child_double_forks_and_exits, by its start time",
        ]
    )
    assert "marked-off" not in run.output  # neither at its test nor at the end of the run
    assert "left behind by the test run" not in run.output


def test_warn_reports_the_same_leaks_and_fails_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY_SUITE)
    run = run_suite(pytester, "--child-leaks=warn")
    run.result.assert_outcomes(passed=5, warnings=3)
    assert run.result.ret == 0
    assert run.output.count("ChildLeakWarning: ") == 3
    assert f"PID {run.pid('zombie')} zombie, exit status 3" in run.output
    assert f"PID {run.pid('held-child')} still running" in run.output
    assert f"PID {run.pid('orphan')} still running" in run.output


def test_vv_prints_the_whole_spawn_stack(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY_SUITE)
    run = run_suite(pytester, "--child-leaks=fail", "-vv", "-k", "running_child")
    run.result.stdout.fnmatch_lines(
        [
            "    spawn stack (most recent call last):",
            '      File "*/_pytest/python.py", line *, in pytest_pyfunc_call',
            '      File "*/test_leaky.py", line *, in test_leaves_a_running_child',
            "        hold_a_child(*)  # site: caller",
            '      File "*/test_leaky.py", line *, in hold_a_child',
            "        proc = subprocess.Popen(*)  # site: popen",
            '      File "*/subprocess.py", line *, in Popen.__init__',
            '      File "*/subprocess.py", line *, in Popen._execute_child',
        ]
    )


def test_a_marker_turns_the_check_on_for_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY_SUITE)
    pytester.makeconftest(
        "import pytest\n\n"
        "def pytest_collection_modifyitems(items):\n"
        "    for item in items:\n"
        "        if item.name == 'test_leaves_a_zombie':\n"
        "            item.add_marker(pytest.mark.child_leaks('fail'))\n"
    )
    run = run_suite(pytester)
    run.result.assert_outcomes(passed=5, errors=1)
    assert teardown_errors(run.output) == {"test_leaves_a_zombie"}
    assert "started by os.fork at test_leaky.py" in run.output


def test_a_bad_marker_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY_SUITE)
    pytester.makeconftest(
        "import pytest\n\n"
        "def pytest_collection_modifyitems(items):\n"
        "    items[0].add_marker(pytest.mark.child_leaks('loud'))\n"
    )
    run = run_suite(pytester, "-k", "cleans_up or zombie")
    assert "child_leaks('loud'): choose off, warn or fail" in run.output
    assert run.result.ret != 0


@pytest.mark.parametrize("mode", ["fail", "warn"])
def test_a_session_fixture_child_is_not_a_leak(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_leaky=LEAKY_SUITE)
    pytester.makeconftest(
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
    run = run_suite(pytester, f"--child-leaks={mode}", "-k", "cleans_up")
    run.result.assert_outcomes(passed=1)
    assert run.result.ret == 0
    assert "behind" not in run.output


SITES = (
    NOTE
    + r"""
import multiprocessing, pty, subprocess, sys, time

import pytest

HELD = []
HOLD = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_popen():
    HELD.append(subprocess.Popen(HOLD))  # site: popen


def test_popen_through_posix_spawn():
    assert subprocess._USE_POSIX_SPAWN  # so the next line takes that path
    HELD.append(subprocess.Popen(HOLD, close_fds=False))  # site: popen_posix_spawn


def test_popen_with_preexec_fn():
    HELD.append(subprocess.Popen(HOLD, preexec_fn=os.getpid))  # site: popen_preexec


def test_fork():
    pid = os.fork()  # site: fork
    if pid == 0:
        time.sleep(120)
        os._exit(0)


def test_forkpty():
    pid, fd = pty.fork()  # site: forkpty
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    HELD.append(fd)
    note("forkpty", pid)  # in a session of its own: the outer test ends it by PID


def test_posix_spawn():
    os.posix_spawn(HOLD[0], HOLD, os.environ)  # site: posix_spawn


def test_posix_spawnp():
    os.posix_spawnp("sleep", ["sleep", "120"], os.environ)  # site: posix_spawnp


def test_posix_spawn_after_a_popen_that_failed():
    with pytest.raises(ValueError):  # after its audit event, before any spawn
        subprocess.Popen(HOLD, env={"A=B": "x"})
    os.posix_spawn(HOLD[0], HOLD, os.environ)  # site: after_failed_popen


def test_multiprocessing_fork():
    process = multiprocessing.get_context("fork").Process(target=time.sleep, args=(120,))
    process.daemon = True
    process.start()  # site: mp_fork


def test_multiprocessing_spawn():
    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(120,))
    process.daemon = True
    process.start()  # site: mp_spawn


def test_pool():
    HELD.append(multiprocessing.get_context("fork").Pool(2))  # site: pool
"""
)

SITE_REPORTS = {
    "test_popen": ("popen", "subprocess.Popen"),
    "test_popen_through_posix_spawn": ("popen_posix_spawn", "subprocess.Popen"),
    "test_popen_with_preexec_fn": ("popen_preexec", "subprocess.Popen"),
    "test_fork": ("fork", "os.fork"),
    "test_forkpty": ("forkpty", "os.forkpty via pty.fork"),
    "test_posix_spawn": ("posix_spawn", "os.posix_spawn"),
    "test_posix_spawnp": ("posix_spawnp", "os.posix_spawnp"),
    "test_posix_spawn_after_a_popen_that_failed": ("after_failed_popen", "os.posix_spawn"),
    "test_multiprocessing_fork": ("mp_fork", "os.fork via multiprocessing.BaseProcess.start"),
    "test_multiprocessing_spawn": (
        "mp_spawn",
        "_posixsubprocess.fork_exec via multiprocessing.BaseProcess.start",
    ),
    "test_pool": ("pool", "os.fork via multiprocessing.BaseContext.Pool"),
}


def test_each_way_of_starting_a_child_shows_its_own_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sites=SITES)
    run = run_suite(pytester, "--child-leaks=fail")
    end_adopted(run.pid("forkpty"))
    run.result.assert_outcomes(passed=len(SITE_REPORTS), errors=len(SITE_REPORTS))
    assert teardown_errors(run.output) == set(SITE_REPORTS)
    for test, (marker, call) in SITE_REPORTS.items():
        site = f"test_sites.py:{line_of(SITES, f'site: {marker}')} in {test}"
        count = 2 if test == "test_pool" else 1
        run.result.stdout.fnmatch_lines(
            [f"test_sites.py::{test} left {count} child process(es) behind:"]
            + [f"    started by {call} at {site}", f"        * # site: {marker}"] * count
        )
    # One record per child: the preexec_fn fork is the Popen's, not a second child; the
    # spawn start method's resource tracker is multiprocessing's, kept for the process's life.
    assert run.output.count("started by ") == len(SITE_REPORTS) + 1
    assert "no spawn record" not in run.output


BYPASS_CONFTEST = """
import os
import _posixsubprocess

# Taken before the plugin starts (conftest files load before pytest_configure):
# calls through these do not go through its wrappers.
RAW_POSIX_SPAWN = os.posix_spawn
RAW_FORK_EXEC = _posixsubprocess.fork_exec
"""

FALLBACKS = (
    NOTE
    + r"""
import ctypes, subprocess, sys, time

import _posixsubprocess
from conftest import RAW_FORK_EXEC, RAW_POSIX_SPAWN

HELD = []
HOLD = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_fork_by_c_code():
    # What a C extension does: no audit event, only the at-fork hooks (the stack is
    # read in the first, so the line shown is the one that calls it).
    ctypes.pythonapi.PyOS_BeforeFork()  # site: c_fork
    pid = ctypes.CDLL(None).fork()
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        time.sleep(120)
        os._exit(0)
    ctypes.pythonapi.PyOS_AfterFork_Parent()


def test_popen_past_the_wrapper(monkeypatch):
    monkeypatch.setattr(_posixsubprocess, "fork_exec", RAW_FORK_EXEC)
    monkeypatch.setattr(subprocess, "_fork_exec", RAW_FORK_EXEC)  # its own name for it
    HELD.append(subprocess.Popen(HOLD, preexec_fn=os.getpid))  # site: popen_raw


def test_posix_spawn_past_the_wrapper():
    note("raw", RAW_POSIX_SPAWN(HOLD[0], HOLD, os.environ))
"""
)


def test_calls_the_wrappers_do_not_see_get_a_record_or_say_they_have_none(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(BYPASS_CONFTEST)
    pytester.makepyfile(test_fallbacks=FALLBACKS)
    run = run_suite(pytester, "--child-leaks=fail")
    run.result.assert_outcomes(passed=3, errors=3)
    run.result.stdout.fnmatch_lines(
        [
            "test_fallbacks.py::test_fork_by_c_code left 1 child process(es) behind:",
            "*",
            "    started by a fork by C code at "
            f"test_fallbacks.py:{line_of(FALLBACKS, 'site: c_fork')} in test_fork_by_c_code",
        ]
    )
    # The Popen's own audit event opened the record; the Popen gives the PID.
    run.result.stdout.fnmatch_lines(
        [
            "test_fallbacks.py::test_popen_past_the_wrapper left 1 child process(es) behind:",
            "*",
            "*",
            "    started by subprocess.Popen at "
            f"test_fallbacks.py:{line_of(FALLBACKS, 'site: popen_raw')} in test_popen_past*",
        ]
    )
    # No record, never a wrong one: placed in its test by its start time.
    run.result.stdout.fnmatch_lines(
        [
            "test_fallbacks.py::test_posix_spawn_past_the_wrapper left 1 child process(es) behind:",
            f"  PID {run.pid('raw')} still running *",
            "    no spawn record (*): it started during "
            "test_fallbacks.py::test_posix_spawn_past_the_wrapper, by its start time",
        ]
    )


OFF = """
import os, sys

import _posixsubprocess


def test_nothing_is_installed_or_imported():
    assert "diagnostics.leaks" not in sys.modules and "diagnostics.spawns" not in sys.modules
    assert "psutil" not in sys.modules
    assert type(_posixsubprocess.fork_exec).__name__ == "builtin_function_or_method"
    assert type(os.posix_spawn).__name__ == "builtin_function_or_method"
"""


def test_off_the_plugin_installs_and_imports_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_off=OFF)
    run = run_suite(pytester, "-p", "no:locust")  # locust's own pytest plugin imports psutil
    run.result.assert_outcomes(passed=1)


def test_on_it_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_on="import sys\n\n"
        "def test_light():\n"
        "    heavy = {'locust', 'matplotlib', 'gevent', 'loadtest', 'reports', 'jinja2'}\n"
        "    assert not heavy & {name.split('.')[0] for name in sys.modules}\n"
    )
    run = run_suite(pytester, "-p", "no:locust", "--child-leaks=fail")
    run.result.assert_outcomes(passed=1)


def test_the_reap_choices_are_the_policies() -> None:
    from diagnostics.leaks import ReapPolicy
    from diagnostics.pytest_plugin import REAP_CHOICES

    assert typing.get_args(ReapPolicy) == REAP_CHOICES
