"""Interrupted, broken and hostile run directories: draw what is there, mark what is not,
escape everything that came from data, and never raise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnostics.contract import RunRecord, ScenarioRecord
from reports.build import ReportResult, build_report
from tests.reports_fixtures import Spec, png_size, rewrite, write_json, write_run

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"  # a legal folder name: no slash
MATHTEXT = r"cost$\frac{$"  # would be broken mathtext if matplotlib parsed it


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    """A run cut short by Ctrl-C, with hostile strings wherever data reaches the page."""
    run_dir = write_run(
        tmp_path_factory.mktemp("partial") / "run",
        [
            Spec("no-reaper", "none", duration=3, interval=0.1, leak_share=1.0),
            Spec(IMG, "loop", duration=3, interval=0.1),
            Spec(MATHTEXT, "single", duration=3, interval=0.1, leak_share=0.5),
        ],
    )
    run = RunRecord.from_json(json.loads((run_dir / "run.json").read_text()))
    rewrite(
        run_dir / "run.json",
        RunRecord,
        exit_status="interrupted",
        ended=None,
        scenarios=[*run.scenarios, SCRIPT, "reaper-ignore"],
        parameters={**run.parameters, "server_cmd": ["sh", "-c", SCRIPT]},
    )
    # no-reaper: Locust never wrote its files, scenario.json lost, last sample cut mid-line.
    leak = run_dir / "no-reaper"
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust.log", "scenario.json"):
        (leak / name).unlink()
    samples = (leak / "samples.csv").read_text()
    (leak / "samples.csv").write_text(samples[: samples.rindex(",") + 2])
    # The hostile-named scenario: empty samples and errors carrying markup.
    (run_dir / IMG / "samples.csv").write_text("")
    rewrite(
        run_dir / IMG / "scenario.json",
        ScenarioRecord,
        status="server-died",
        final_sample=None,
        errors=[f"server said {SCRIPT}"],
        warnings=[IMG],
    )
    # reaper-ignore started but wrote only half of its scenario.json.
    (run_dir / "reaper-ignore").mkdir()
    (run_dir / "reaper-ignore" / "scenario.json").write_text('{"name": "reaper-ignore", "str')
    return build_report(run_dir)


def row(report: ReportResult, name: str) -> dict:
    return next(s for s in report.summary["scenarios"] if s["name"] == name)


def test_every_scenario_gets_a_row_and_a_dashboard(report: ReportResult) -> None:
    names = [s["name"] for s in report.summary["scenarios"]]
    assert names == ["no-reaper", IMG, MATHTEXT, SCRIPT, "reaper-ignore"]
    pngs = sorted(p.name for p in report.written if p.suffix == ".png")
    assert pngs == sorted(
        ["zombies.png", "children.png", "lifetimes.png", "no-reaper.png",
         "img_src_x_onerror_alert_2.png", "cost_frac.png", "script_alert_1_script.png",
         "reaper-ignore.png"]
    )  # fmt: skip
    for path in report.written:
        assert path.parent == report.run_dir
        if path.suffix == ".png":
            assert png_size(path)[0] > 800


def test_missing_files_are_marked_and_measured_figures_kept(report: ReportResult) -> None:
    leak = row(report, "no-reaper")
    assert leak["missing"] == [
        "scenario.json", "locust_stats.csv", "locust_stats_history.csv", "locust.log",
    ]  # fmt: skip
    assert leak["requests"] is None and leak["p95_ms"] is None and leak["rps"] is None
    assert leak["strategy"] is None  # it was only recorded in the lost scenario.json
    assert leak["final_zombies"] == leak["peak_zombies"] == 300  # the cut row is not counted
    assert leak["forked"] == 300  # server.json survived
    assert "missing: scenario.json, locust_stats.csv" in " ".join(leak["warnings"])
    assert any("dropped 1 incomplete row" in w for w in leak["warnings"])


def test_a_lost_scenario_json_leaves_status_and_cap_unknown(report: ReportResult) -> None:
    leak = row(report, "no-reaper")
    assert leak["status"] is None and leak["capped"] is None  # not "running", not false


def test_empty_samples_and_harness_errors_become_warnings(report: ReportResult) -> None:
    hostile = row(report, IMG)
    assert hostile["final_zombies"] is None and hostile["peak_alive"] is None
    assert hostile["verdict"] == "zombies not measured"
    assert hostile["requests"] is not None  # Locust's files are intact
    assert f"error: server said {SCRIPT}" in hostile["warnings"]
    assert IMG in hostile["warnings"]
    assert "scenario ended with status 'server-died'" in hostile["warnings"]
    assert "samples.csv is empty" in hostile["warnings"]


def test_unreadable_and_unlisted_scenarios(report: ReportResult) -> None:
    script = row(report, SCRIPT)
    assert script["files"] == [] and "samples.csv" in script["missing"]
    assert any("not a folder name" in w for w in script["warnings"])
    ignore = row(report, "reaper-ignore")
    assert any("scenario.json is not valid JSON" in w for w in ignore["warnings"])
    assert "run ended with status 'interrupted'" in report.summary["run"]["warnings"]


def test_hostile_strings_are_escaped_in_html(report: ReportResult) -> None:
    page = (report.run_dir / "index.html").read_text(encoding="utf-8")
    assert "<script" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    # Links to a hostile folder are percent-encoded, then escaped.
    assert 'href="%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E/server.log"' in page
    assert "missing: scenario.json, locust_stats.csv" in page


def test_hostile_strings_are_escaped_in_markdown(report: ReportResult) -> None:
    assert "<script>" not in report.markdown
    assert r"\<script\>alert(1)\</script\>" in report.markdown
    assert r"cost$\\frac{$" in report.markdown


def test_run_without_run_json_still_renders(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [Spec("reaper-loop", "loop", duration=2, interval=0.1)])
    (run_dir / "run.json").unlink()
    result = build_report(run_dir)
    assert result.summary["run"]["id"] == "run" and result.summary["run"]["kind"] == "loadtest"
    assert result.summary["scenarios"][0]["verdict"].startswith("reaps every child")
    assert 'href="run.json"' not in (run_dir / "index.html").read_text()


def test_run_json_alone_renders_an_empty_report(tmp_path: Path) -> None:
    write_json(tmp_path / "run.json", {"id": "x", "kind": "loadtest", "scenarios": "oops"})
    result = build_report(tmp_path)
    assert result.summary["scenarios"] == []
    assert "No scenario data" in result.markdown
    assert png_size(tmp_path / "zombies.png")[0] > 800
