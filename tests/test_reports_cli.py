"""`python -m reports` as a user runs it: paths on stdout; bad input gives one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.latest import point_latest
from tests.cli_runner import RUNNERS, CliResult, Run, assert_one_line_error, runner_for
from tests.reports_fixtures import Spec, write_run


@pytest.fixture(params=RUNNERS)
def run_cli(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Run:
    return runner_for("reports", request.param, capsys)


def assert_refused(result: CliResult, fragment: str) -> None:
    """The project's one-line usage error, and no report path printed as if one was drawn."""
    assert_one_line_error(result, fragment)
    assert result.stdout == ""


def test_missing_directory(tmp_path: Path, run_cli: Run) -> None:
    assert_refused(run_cli(str(tmp_path / "nope")), "no such directory")


def test_a_file_is_not_a_run_directory(tmp_path: Path, run_cli: Run) -> None:
    (tmp_path / "run.json").write_text("{}")
    assert_refused(run_cli(str(tmp_path / "run.json")), "not a directory")


def test_a_directory_without_run_files(tmp_path: Path, run_cli: Run) -> None:
    (tmp_path / "photos").mkdir()
    assert_refused(run_cli(str(tmp_path)), "not a run directory")


def test_dangling_latest_link(tmp_path: Path, run_cli: Run) -> None:
    (tmp_path / "latest").symlink_to("runs/gone")
    assert_refused(run_cli(str(tmp_path / "latest")), "no such directory")


@pytest.mark.timeout(120)
def test_renders_through_the_latest_link_and_prints_paths(tmp_path: Path, run_cli: Run) -> None:
    run_dir = write_run(
        tmp_path / "runs" / "20261126-221500",
        [Spec("no-reaper", "none", duration=2, interval=0.1, leak_share=1.0)],
    )
    link = point_latest(tmp_path / "runs", run_dir)
    result = run_cli(str(link))
    assert result.returncode == 0, result.stderr
    printed = [Path(line) for line in result.stdout.splitlines()]
    assert [path.name for path in printed] == [
        "zombies.png", "children.png", "lifetimes.png", "no-reaper.png", "summary.json",
        "summary.md", "index.html",
    ]  # fmt: skip
    assert all(path.parent == run_dir.resolve() and path.is_file() for path in printed)


def test_a_bad_flag_is_one_line(tmp_path: Path, run_cli: Run) -> None:
    assert_refused(run_cli("--bogus", str(tmp_path)), "unrecognized arguments: --bogus")
