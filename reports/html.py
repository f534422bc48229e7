"""index.html: the report a person opens, rendered from summary.json's content.

Jinja2 with autoescape on: scenario names, command lines and error messages come from
files a crashed or hostile process may have written, so every value is escaped as text,
and names used in links are percent-encoded first. The page loads nothing from the
network; its images are the PNGs beside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader

from diagnostics.contract import Status
from reports.table import (
    HEADERS,
    TEXT_COLUMNS,
    cells,
    figure,
    lifetime_line,
    mib,
    parameter,
    when,
)

TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> Environment:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    environment.filters.update(
        urlpath=lambda name: quote(str(name), safe=""),
        figure=figure,
        when=when,
        parameter=parameter,
        mib=mib,
        lifetime=lifetime_line,
    )
    return environment


def _items(value: Any) -> list[tuple[str, Any]]:
    return [(str(key), item) for key, item in value.items()] if isinstance(value, dict) else []


def render_index(summary: dict[str, Any], run_plots: list[str], has_run_json: bool) -> str:
    """The page for one run; `run_plots` are the run-wide figures' file names, in order."""
    run = summary["run"]
    scenarios = summary["scenarios"]
    return (
        _environment()
        .get_template("index.html")
        .render(
            run=run,
            scenarios=scenarios,
            headers=HEADERS,
            text_columns=TEXT_COLUMNS,
            rows=[cells(scenario) for scenario in scenarios],
            run_plots=run_plots,
            parameters=_items(run.get("parameters")),
            machine=_items(run.get("machine")),
            has_run_json=has_run_json,
            ok=Status.OK,
            generated=time.time(),
        )
    )
