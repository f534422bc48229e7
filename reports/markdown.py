"""summary.md: the summary table, verdicts and warnings, readable both in a terminal and rendered.

The harness prints it at the end of `make loadtest`, so columns are padded to line up in a
monospace terminal while staying a valid Markdown table.
"""

from __future__ import annotations

import re
from typing import Any

from reports.table import HEADERS, cells, lifetime_line, parameter

# Characters that would start Markdown or HTML markup inside a table cell. An underscore
# inside a word does not, and escaping it would clutter names like work_ms in a terminal.
_SPECIAL = re.compile(r"([\\|<>*\[\]`])")


def escape(text: str) -> str:
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def to_markdown(summary: dict[str, Any]) -> str:
    run = summary["run"]
    scenarios = summary["scenarios"]
    lines = [f"# reaperlab {escape(str(run['kind']))} run {escape(str(run['id']))}", ""]
    parameters = run.get("parameters")
    if isinstance(parameters, dict) and parameters:
        shown = ", ".join(f"{key} {parameter(value)}" for key, value in parameters.items())
        lines += [escape(shown), ""]
    if scenarios:
        lines += [*_table([list(HEADERS), *(cells(s) for s in scenarios)]), ""]
        lines += [f"- **{escape(s['name'])}**: {escape(s['verdict'])}" for s in scenarios]
        lines += [
            f"- **{escape(s['name'])}** zombie lifetime, exit to reap: {escape(line)}"
            for s in scenarios
            if (line := lifetime_line(s))
        ]
        lines += [
            f"- **{escape(s['name'])}**: {workers_line(s)}" for s in scenarios if s.get("workers")
        ]
        lines += [
            f"- **{escape(s['name'])}**: {escape(s['listener_aftermath']['headline'])}"
            for s in scenarios
            if s.get("listener_aftermath")
        ]
        lines.append("")
    else:
        lines += ["No scenario data in this run directory.", ""]
    warnings = [escape(text) for text in run["warnings"]]
    warnings += [f"{escape(s['name'])}: {escape(w)}" for s in scenarios for w in s["warnings"]]
    if warnings:
        lines += ["## Warnings", "", *(f"- {text}" for text in warnings), ""]
    return "\n".join(lines)


def workers_line(scenario: dict[str, Any]) -> str:
    """How many Locust workers made the load, and each one's share."""
    workers = scenario["workers"]
    shares = ", ".join(f"{w.get('requests', '?'):,}" for w in workers)
    return f"load from {len(workers)} Locust workers (requests each: {shares})"


def _table(rows: list[list[str]]) -> list[str]:
    rows = [[escape(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        return (
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            + " |"
        )

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return [line(rows[0]), rule, *(line(row) for row in rows[1:])]
