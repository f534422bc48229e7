"""The run's last word (loadtest/harness.py's finish): the exit status is what run.json says.

In process, on a real run directory; the report's drawing is the one thing replaced, by a
failure of the kind a user meets (a full disk, a Ctrl-C), so that each ending is certain.
The end-to-end Ctrl-C while the report is drawn is in test_loadtest_endings.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import NoReturn

import pytest

from loadtest import harness as harness_module
from loadtest.experiment import Settings
from loadtest.harness import Harness, RunPlan
from loadtest.live import PlainView
from loadtest.load import LoadShape
from loadtest.scenarios import select


def finished_run(tmp_path: Path, draw: object, code: int = 0) -> tuple[Harness, int, str | None]:
    plan = RunPlan(select(None, "loop", False, []), Settings(LoadShape(4, 40, 2)), tmp_path)
    harness = Harness(plan, PlainView())
    harness.record.exit_code, harness.record.exit_status = code, "ok" if code == 0 else "x"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness_module, "build_report", draw)
        final, markdown, problem = harness.finish(code)
    harness.close()
    assert markdown is None
    return harness, final, problem


def run_json(harness: Harness) -> dict:
    return json.loads((harness.run_dir / "run.json").read_text())


def test_a_report_the_full_disk_stopped_fails_an_ok_run(tmp_path: Path) -> None:
    def full(_run_dir: Path) -> NoReturn:
        raise OSError(errno.ENOSPC, "No space left on device")

    harness, code, problem = finished_run(tmp_path, full)
    assert code == 1
    assert problem is not None and problem.startswith(
        "the report could not be drawn (disk full drawing it); the data is in "
    )
    written = run_json(harness)
    assert written["exit_code"] == 1 and written["exit_status"] == f"error: {problem}"


def test_ctrl_c_while_the_report_is_drawn_is_an_interrupted_run(tmp_path: Path) -> None:
    def pressed(_run_dir: Path) -> NoReturn:
        raise KeyboardInterrupt

    harness, code, problem = finished_run(tmp_path, pressed)
    assert code == 130
    assert problem is not None and problem.startswith("the report was not drawn (Ctrl-C")
    written = run_json(harness)
    assert written["exit_code"] == 130 and written["exit_status"] == "interrupted"


def test_a_run_that_failed_keeps_its_own_status_when_the_report_fails_too(tmp_path: Path) -> None:
    def full(_run_dir: Path) -> NoReturn:
        raise OSError(errno.ENOSPC, "No space left on device")

    harness, code, problem = finished_run(tmp_path, full, code=1)
    assert code == 1 and problem is not None
    assert run_json(harness)["exit_status"] == "x"  # the scenario's failure is the status
