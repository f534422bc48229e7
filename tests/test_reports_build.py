"""A complete run directory drawn end to end: files, PNGs, HTML, Markdown and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diagnostics.contract import ScenarioRecord, Status, run_error
from reports.build import ReportResult, build_report, dashboard_names
from reports.html import render_index
from reports.rundir import load_run
from reports.summary import summarize
from tests.reports_fixtures import Spec, png_size, rewrite, write_run, write_watch_run

SPECS = [
    Spec("no-reaper", "none", duration=5, interval=0.1, leak_share=1.0, seed=1),
    Spec("reaper-loop", "loop", duration=5, interval=0.1, seed=2),
    Spec("reaper-single", "single", duration=5, interval=0.1, leak_share=0.43, seed=3),
    Spec("fd-leak", "loop", duration=5, interval=0.1, leak_client_fd=True, seed=4),
    Spec("capped", "none", duration=5, interval=0.1, leak_share=1.0, cap=300, seed=5),
]
CONTRACT_KEYS = {
    "name", "strategy", "requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms",
    "peak_zombies", "final_zombies", "peak_alive", "fds_start", "fds_end", "forked", "reaped",
    "capped", "verdict", "warnings",
}  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    return build_report(write_run(tmp_path_factory.mktemp("run") / "20261126-221500", SPECS))


def scenario(report: ReportResult, name: str) -> dict:
    return next(s for s in report.summary["scenarios"] if s["name"] == name)


def test_every_output_is_written_and_reported(report: ReportResult) -> None:
    names = {path.name for path in report.written}
    assert names == {
        "zombies.png", "children.png", "lifetimes.png", "no-reaper.png", "reaper-loop.png",
        "reaper-single.png", "fd-leak.png", "capped.png", "index.html", "summary.md",
        "summary.json",
    }  # fmt: skip
    assert all(path.parent == report.run_dir and path.stat().st_size for path in report.written)


def test_pngs_are_valid_and_of_sensible_size(report: ReportResult) -> None:
    for path in report.written:
        if path.suffix == ".png":
            width, height = png_size(path)
            assert 800 <= width <= 1600 and 450 <= height <= 1600, path.name
            assert path.stat().st_size > 20_000, path.name  # not a blank canvas


def test_summary_json_keeps_the_contract(report: ReportResult) -> None:
    summary = json.loads(
        (report.run_dir / "summary.json").read_text(encoding="utf-8"),
        parse_constant=lambda name: pytest.fail(f"{name} in summary.json"),
    )
    assert summary == json.loads(json.dumps(report.summary))
    assert {"id", "kind", "exit_status", "parameters", "machine"} <= summary["run"].keys()
    assert summary["run"]["machine"]["pid_max"] == 32768
    for row in summary["scenarios"]:
        assert row.keys() >= CONTRACT_KEYS


def test_no_reaper_figures(report: ReportResult) -> None:
    row = scenario(report, "no-reaper")
    assert row["verdict"] == "leaks one zombie per request (sampled)"
    assert (row["requests"], row["forked"], row["reaped"]) == (500, 500, 0)
    assert row["final_zombies"] == row["peak_zombies"] == 500
    assert row["failures"] == 0 and row["rps"] == 100.0 and row["p95_ms"] == 8
    assert row["capped"] is False and row["warnings"] == []
    assert [check["ok"] for check in row["checks"]] == [True, True]


def test_verdicts_per_scenario(report: ReportResult) -> None:
    assert scenario(report, "reaper-loop")["verdict"].startswith("reaps every child; at least ")
    assert scenario(report, "reaper-single")["verdict"] == (
        "signals coalesced: 43% of children left as zombies (sampled)"
    )
    assert scenario(report, "fd-leak")["verdict"].endswith("leaks one descriptor per request")
    capped = scenario(report, "capped")
    assert capped["capped"] is True and capped["final_zombies"] == 300
    assert capped["verdict"] == (
        "leaks one zombie per request (sampled); stopped at the zombie cap of 300 after 4 s"
    )


def test_html_has_the_table_verdicts_plots_and_links(report: ReportResult) -> None:
    page = (report.run_dir / "index.html").read_text(encoding="utf-8")
    assert '<table id="summary">' in page
    for header in ("requests", "p50 / p95 / p99 ms", "zombies peak / final", "fds start → end"):
        assert f"<th>{header}</th>" in page
    for row in report.summary["scenarios"]:
        assert f'<td class="verdict" data-label="verdict">{row["verdict"]}</td>' in page
    for image in ("zombies.png", "children.png", "no-reaper.png", "capped.png"):
        assert f'src="{image}"' in page
    assert 'href="no-reaper/locust_stats_history.csv"' in page
    assert 'href="no-reaper/samples.csv"' in page
    assert "32768" in page and "6.1.0-test" in page
    assert "http://" not in page and "https://" not in page  # opens offline


def test_markdown_has_the_table_and_verdicts(report: ReportResult) -> None:
    text = (report.run_dir / "summary.md").read_text(encoding="utf-8")
    assert text == report.markdown
    assert "| no-reaper " in text and "| 500 / 0 " in text
    assert "- **reaper-single**: signals coalesced: 43% of children left as zombies" in text


def test_watch_run_renders_without_locust(tmp_path: Path) -> None:
    zombies = np.concatenate([np.zeros(10), np.arange(50.0)])
    result = build_report(write_watch_run(tmp_path / "watch-run", zombies))
    [row] = result.summary["scenarios"]
    assert row["verdict"] == "49 zombies, rising +2.0/s over the last 7 s"
    assert row["requests"] is None and row["missing"] == [] and row["warnings"] == []
    assert png_size(result.run_dir / "watch.png")[1] > 500
    assert "pid 777, cmdline /usr/bin/helperd --fork" in result.markdown


def test_dashboard_names_are_safe_and_unique() -> None:
    names = dashboard_names(["no-reaper", "zombies", "<b>x</b>", "_b_x_b_", "..", "a/../b"])
    assert names == {
        "no-reaper": "no-reaper.png",
        "zombies": "zombies-2.png",
        "<b>x</b>": "b_x_b.png",
        "_b_x_b_": "b_x_b-2.png",
        "..": "scenario.png",
        "a/../b": "a_.._b.png",
    }


def test_final_zombies_prefer_the_harness_final_sample(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [Spec("no-reaper", "none", duration=2, interval=0.1)])
    path = run_dir / "no-reaper" / "scenario.json"
    record = ScenarioRecord.from_json(json.loads(path.read_text()))
    rewrite(path, ScenarioRecord, final_sample={**(record.final_sample or {}), "zombies": 7})
    [row] = summary_of(run_dir)["scenarios"]
    assert row["final_zombies"] == 7
    rewrite(path, ScenarioRecord, final_sample=None)
    [row] = summary_of(run_dir)["scenarios"]
    assert row["final_zombies"] == 0  # the last samples.csv row


def summary_of(run_dir: Path) -> dict:
    """What summary.json would say, without drawing the plots."""
    run = load_run(run_dir)
    return summarize(run, dashboard_names([scenario.name for scenario in run.scenarios]))


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (Status.OK, '<span class="ok">ok</span>'),
        (Status.INTERRUPTED, '<span class="bad">interrupted</span>'),
        (Status.RUNNING, '<span class="bad">running</span>'),  # the harness was killed
        (run_error("a", "why"), '<span class="bad">error: a: why</span>'),
    ],
)
def test_the_page_calls_a_run_good_only_when_its_exit_status_is_ok(status: str, shown: str) -> None:
    run = {"id": "x", "kind": "loadtest", "exit_status": str(status)}
    assert shown in render_index({"run": run, "scenarios": []}, [], has_run_json=False)
