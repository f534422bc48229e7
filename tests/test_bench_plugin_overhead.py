"""`python -m bench.plugin_overhead`: it runs and gives every figure it promises; not the speed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.plugin_overhead import LABELS, SETTINGS, main
from tests.cli_runner import ROOT, CliResult, assert_one_line_error


@pytest.mark.slow  # three inner pytest runs
def test_a_tiny_run_gives_each_figure_for_each_setting() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.plugin_overhead",
            "--children",
            "3",
            "--tests",
            "3",
            "--rounds",
            "1",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["phase"] for row in rows] == list(LABELS)
    for row in rows:
        for figure in ("wall_us", "cpu_us", "faults"):
            assert set(row[figure]) == set(SETTINGS)
            assert all(value >= 0 for value in row[figure].values())
        assert row["added_cpu_us"] == row["cpu_us"]["on"] - row["cpu_us"]["not loaded"]


@pytest.mark.parametrize("args", [["--children", "0"], ["--rounds", "x"], ["--nope"]])
def test_bad_flags_are_one_line_and_exit_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(args)  # parsing fails before anything runs: in-process is safe
    out, err = capsys.readouterr()
    assert_one_line_error(CliResult(code, out, err), "bench:")
    assert out == ""
