"""Run directory in, report out: the one entry point for the command line and the harness.

The harness calls `build_report` in-process at the end of a run and prints
`ReportResult.markdown`; `python -m reports` calls it on any run directory to redraw it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics.contract import INDEX_HTML, RUN, RUN_PLOTS, RUN_REPORT, SUMMARY_JSON, SUMMARY_MD
from reports import listener
from reports.html import render_index
from reports.markdown import to_markdown
from reports.plots import RUN_PLOT_DRAWERS, plot_dashboard
from reports.rundir import load_run
from reports.summary import summarize, to_json

RESERVED_STEMS = frozenset(Path(name).stem for name in (*RUN_REPORT, RUN))
"""Names the run-wide files already use: a scenario's dashboard must not overwrite them."""


@dataclass(frozen=True)
class ReportResult:
    """What a report build produced: the files written and the summary they show."""

    run_dir: Path
    written: list[Path]
    summary: dict[str, Any]
    markdown: str


def dashboard_names(scenarios: list[str]) -> dict[str, str]:
    """`<scenario>.png` for each scenario, made safe as a file name and unique."""
    names: dict[str, str] = {}
    taken = set(RESERVED_STEMS)
    for scenario in scenarios:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", scenario).strip("._") or "scenario"
        unique, n = stem, 1
        while unique in taken:
            n += 1
            unique = f"{stem}-{n}"
        taken.add(unique)
        names[scenario] = f"{unique}.png"
    return names


def build_report(run_dir: Path) -> ReportResult:
    """Write plots, index.html, summary.md and summary.json into `run_dir`.

    Raises reports.rundir.NotARunDirectory for a path with nothing to report on, and
    OSError when the directory cannot be written; any content problem is reported in the
    outputs instead.
    """
    run = load_run(Path(run_dir))
    out = run.directory
    dashboards = dashboard_names([scenario.name for scenario in run.scenarios])
    summary = summarize(run, dashboards)
    written = [RUN_PLOT_DRAWERS[name](run, out / name) for name in RUN_PLOTS]
    for scenario, row in zip(run.scenarios, summary["scenarios"], strict=True):
        written.append(
            plot_dashboard(run, scenario, row["verdict"], out / dashboards[scenario.name])
        )
        port = (row["listener_aftermath"] or {}).get("figure")
        if port:
            written.append(listener.plot(scenario.record, scenario.name, out / port))
    markdown = to_markdown(summary)
    page = render_index(summary, list(RUN_PLOTS), (out / RUN).is_file())
    for name, content in (
        (SUMMARY_JSON, to_json(summary)),
        (SUMMARY_MD, markdown),
        (INDEX_HTML, page),
    ):
        (out / name).write_text(content, encoding="utf-8")
        written.append(out / name)
    return ReportResult(out, written, summary, markdown)
