"""reports/latest: always a whole, relative link to the newest run."""

from __future__ import annotations

import os
from pathlib import Path

from reports.latest import point_latest


def test_points_beside_the_runs_folder_with_a_relative_target(tmp_path: Path) -> None:
    runs = tmp_path / "reports" / "runs"
    (runs / "20261126-221500").mkdir(parents=True)
    link = point_latest(runs, runs / "20261126-221500")
    assert link == tmp_path / "reports" / "latest"
    assert os.readlink(link) == "runs/20261126-221500"
    assert link.resolve() == (runs / "20261126-221500").resolve()


def test_repointing_replaces_the_link_and_leaves_no_temporary(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for run_id in ("a", "b"):
        (runs / run_id).mkdir(parents=True)
    point_latest(runs, runs / "a")
    link = point_latest(runs, runs / "b")
    assert os.readlink(link) == "runs/b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "runs"]
    assert (runs / "a").is_dir()  # old runs are kept


def test_survives_a_stale_temporary_from_a_crashed_writer(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / "a").mkdir(parents=True)
    (tmp_path / f".latest.{os.getpid()}.tmp").symlink_to("nowhere")
    assert os.readlink(point_latest(runs, runs / "a")) == "runs/a"
