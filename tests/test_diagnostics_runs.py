"""Run ids: each run gets its own new entry in --out, named by the second it started."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnostics import runs


@pytest.fixture
def same_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs.time, "strftime", lambda _format: "20261127-120000")


@pytest.mark.usefixtures("same_second")
def test_runs_started_in_the_same_second_get_their_own_directory(tmp_path: Path) -> None:
    made = [runs.new_run_dir(tmp_path / "runs") for _ in range(3)]
    assert [path.name for path in made] == [
        "20261127-120000",
        "20261127-120000-2",
        "20261127-120000-3",
    ]
    assert all(path.is_dir() and not any(path.iterdir()) for path in made)


@pytest.mark.usefixtures("same_second")
def test_bench_records_are_named_the_same_way(tmp_path: Path) -> None:
    first, second = (runs.new_run_file(tmp_path, ".json") for _ in range(2))
    assert (first.name, second.name) == ("20261127-120000.json", "20261127-120000-2.json")
    assert first.read_bytes() == b"" and second.read_bytes() == b""


@pytest.mark.usefixtures("same_second")
def test_an_existing_run_is_never_reused(tmp_path: Path) -> None:
    (tmp_path / "20261127-120000").mkdir()
    (tmp_path / "20261127-120000" / "run.json").write_text("{}")
    made = runs.new_run_dir(tmp_path)
    assert made.name == "20261127-120000-2"
    assert (tmp_path / "20261127-120000" / "run.json").read_text() == "{}"
