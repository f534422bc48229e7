"""diagnostics.leakreport: which frame of a spawn stack the report shows, and its words."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from diagnostics import spawns
from diagnostics.leakreport import describe, spawn_site
from diagnostics.leaks import Blame, Fate, Leak
from diagnostics.spawns import FORK, POPEN, SpawnRecord, ThreadNote

STDLIB = sysconfig.get_path("stdlib")
PACKAGES = sysconfig.get_path("purelib")
RUNNER = ThreadNote("MainThread", runner=True, known=True, started_during="t.py::test_a")
PYTEST_FRAME = (f"{PACKAGES}/_pytest/python.py", 160, "pytest_pyfunc_call")


def test_the_site_is_the_innermost_frame_of_the_user_s_own_code(tmp_path: Path) -> None:
    stack = (
        (f"{STDLIB}/subprocess.py", 1800, "Popen._execute_child"),
        (f"{STDLIB}/subprocess.py", 1000, "Popen.__init__"),
        (f"{PACKAGES}/somelib/run.py", 12, "start"),  # an installed package: not the user's
        (str(tmp_path / "test_x.py"), 7, "test_x"),
        PYTEST_FRAME,
    )
    assert spawn_site(stack) == 3


def test_library_only_stacks_show_the_innermost_frame_but_never_the_tracker() -> None:
    stack = (
        (spawns.__file__, 150, "SpawnTracker._wrapper.<locals>.spawn"),
        (f"{STDLIB}/multiprocessing/util.py", 453, "spawnv_passfds"),
        (f"{STDLIB}/threading.py", 975, "Thread.run"),
    )
    assert spawn_site(stack) == 1


def test_a_report_names_the_call_the_site_and_the_fate(tmp_path: Path) -> None:
    test_file = tmp_path / "test_x.py"
    test_file.write_text(
        "import os\n\ndef test_x():\n    helper()\n\ndef helper():\n    os.fork()\n"
    )
    stack = (
        (str(test_file), 7, "helper"),
        (str(test_file), 4, "test_x"),
        PYTEST_FRAME,
    )
    record = SpawnRecord(FORK, stack, RUNNER, "test_x.py::test_x", 1, pid=10)
    leak = Leak(
        10,
        "Z",
        "[python]",
        Blame("test_x.py::test_x", "test_x.py::test_x"),
        record,
        exit_status="3",
        fate=Fate.REAPED,
    )
    lines = describe(leak, root=tmp_path, test=(str(test_file), 3, "test_x"))
    assert lines == [
        "PID 10 zombie, exit status 3: [python]",
        "  reaped now: nothing else in the process owned it",
        "  started by os.fork at test_x.py:7 in helper",
        "      os.fork()",
        "  called from the test at test_x.py:4 in test_x",
        "      helper()",
    ]


def test_the_via_names_the_library_call_but_not_the_spawning_call_itself(tmp_path: Path) -> None:
    mine = (str(tmp_path / "t.py"), 1, "test_a")
    popen = (
        (f"{STDLIB}/subprocess.py", 1800, "Popen._execute_child"),
        (f"{STDLIB}/subprocess.py", 1000, "Popen.__init__"),
        mine,
    )
    run = (*popen[:2], (f"{STDLIB}/subprocess.py", 548, "run"), mine)
    pool = (
        (f"{STDLIB}/multiprocessing/popen_fork.py", 66, "Popen._launch"),
        (f"{STDLIB}/multiprocessing/context.py", 119, "BaseContext.Pool"),
        mine,
    )

    def first_site_line(call: str, stack: tuple[spawns.Frame, ...]) -> str:
        record = SpawnRecord(call, stack, RUNNER, None, 1, pid=10)
        leak = Leak(10, "S", "x", Blame("t.py::test_a", "t.py::test_a"), record)
        return describe(leak, root=tmp_path)[1]

    assert first_site_line(POPEN, popen) == "  started by subprocess.Popen at t.py:1 in test_a"
    assert first_site_line(POPEN, run) == (
        "  started by subprocess.Popen via subprocess.run at t.py:1 in test_a"
    )
    assert first_site_line(FORK, pool) == (
        "  started by os.fork via multiprocessing.BaseContext.Pool at t.py:1 in test_a"
    )
