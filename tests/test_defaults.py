"""Each default and range is written once (diagnostics/defaults.py, loadtest/defaults.py):
every command line and library that takes a setting starts from the same value and
refuses the same values, with the same one line."""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path

import pytest

from diagnostics import cli as diagnostics_cli
from diagnostics.defaults import INTERVAL, Bounded
from diagnostics.recorder import Recorder
from diagnostics.watch import watch
from loadtest import __main__ as loadtest_cli
from loadtest import defaults
from loadtest.distributed import WorkerOptions
from loadtest.expectations import Expectations
from loadtest.experiment import Settings
from loadtest.load import LoadShape
from tests.cli_runner import RUNNERS, assert_one_line_error, runner_for

LOADTEST_FLAGS: dict[str, Bounded[int] | Bounded[float]] = {
    "users": defaults.USERS,
    "rate": defaults.RATE,
    "work_ms": defaults.WORK_MS,
    "processes": defaults.PROCESSES,
    "expect_status": defaults.EXPECT_STATUS,
    "max_failures": defaults.MAX_FAILURES,
    "interval": INTERVAL,
    "zombie_cap": defaults.ZOMBIE_CAP,
    "settle": defaults.SETTLE,
    "server_timeout": defaults.SERVER_TIMEOUT,
    "stop_grace": defaults.STOP_GRACE,
    "worker_timeout": defaults.WORKER_TIMEOUT,
}


def test_loadtest_flags_default_to_the_shared_values() -> None:
    args = loadtest_cli.build_parser().parse_args([])
    for name, bounded in LOADTEST_FLAGS.items():
        assert getattr(args, name) == bounded.default, name


def test_the_harness_settings_the_command_line_builds_are_its_libraries_defaults() -> None:
    """The plan from no flags at all equals the libraries' own defaults, field by field."""
    settings = loadtest_cli.plan_from(loadtest_cli.build_parser().parse_args([])).settings
    shape = LoadShape(defaults.USERS.default, defaults.RATE.default, defaults.DURATION.default)
    assert settings.shape == shape
    assert settings.expectations == Expectations()
    library = Settings(shape=shape)
    names = ("work_ms", "interval", "zombie_cap", "server_timeout", "stop_grace", "settle")
    for name in (*names, "max_failures"):
        assert getattr(settings, name) == getattr(library, name), name
        assert getattr(library, name) == LOADTEST_FLAGS[name].default, name
    assert WorkerOptions(2, "127.0.0.1").timeout == defaults.WORKER_TIMEOUT.default


def test_every_sampler_defaults_to_the_one_interval() -> None:
    watch_args = diagnostics_cli.build_parser().parse_args(["watch", "1", "--duration", "1"])
    assert watch_args.interval == INTERVAL.default
    for library in (Recorder, watch):
        assert inspect.signature(library).parameters["interval"].default == INTERVAL.default


OUT_OF_RANGE = [0.001, 11.0, math.nan]
"""Below, above and outside the range of 0.005 to 10 seconds."""


@pytest.mark.parametrize("interval", OUT_OF_RANGE)
@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("command", ["loadtest", "diagnostics"])
def test_every_command_refuses_the_same_intervals_in_one_line(
    tmp_path: Path, command: str, runner: str, interval: float, capsys: pytest.CaptureFixture[str]
) -> None:
    run = runner_for(command, runner, capsys)
    flags = ["--interval", str(interval), "--out", str(tmp_path)]
    args = (
        flags if command == "loadtest" else ["watch", str(os.getpid()), "--duration", "1", *flags]
    )
    assert_one_line_error(run(*args), "--interval must be 0.005 to 10 seconds")
    assert not any(tmp_path.iterdir())  # refused before anything started


@pytest.mark.parametrize("interval", OUT_OF_RANGE)
def test_the_recorder_refuses_what_the_command_lines_refuse(
    tmp_path: Path, interval: float
) -> None:
    with pytest.raises(ValueError, match="interval must be 0.005 to 10 seconds"):
        Recorder(os.getpid(), tmp_path / "samples.csv", interval=interval)


@pytest.mark.parametrize(
    ("bounded", "value", "problem"),
    [
        (Bounded(1, 1), 0, "-x must be at least 1"),
        (Bounded(1.0, 0.0), -0.5, "-x must not be negative"),
        (Bounded(5.0, 0.0, 300.0, "seconds"), 301, "-x must be 0 to 300 seconds"),
        (Bounded(5.0, 0.0, 300.0, "seconds"), math.nan, "-x must be 0 to 300 seconds"),
        (Bounded(1.0, 0.0), math.inf, None),
        (Bounded(5.0, 0.0, 300.0), 300, None),
        (Bounded(5.0, 0.0, 300.0), 0, None),
    ],
)
def test_a_range_says_what_it_allows(
    bounded: Bounded[float], value: float, problem: str | None
) -> None:
    assert bounded.problem("-x", value) == problem
