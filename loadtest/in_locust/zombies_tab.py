"""The "Zombies" tab of Locust's web UI (``--web``), in Locust's own process.

Imported by loadtest/in_locust/locust_hooks.py; never by the harness or the tests (gevent patches
fork, waitpid and SIGCHLD in whatever process imports it). It uses the extension points
of Locust's current (React) UI: ``extended_tabs`` and ``extended_tables`` in the page's
template arguments name the tab and its columns, and ``extended_stats`` added to every
``/stats/requests`` answer fills it, so the tab refreshes with Locust's own stats.

The figures come from the harness (loadtest/web.py), which rewrites them atomically each
tick in the file ``--reaperlab-live`` names: this process measures nothing itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment

TAB = "zombies"
COLUMNS = [
    {"key": "figure", "title": "Figure"},
    {"key": "value", "title": "Value"},
    {"key": "source", "title": "Measured by"},
]


@events.init_command_line_parser.add_listener
def _add_option(parser: Any) -> None:
    parser.add_argument(
        "--reaperlab-live",
        default="",
        help="the harness's live figures (JSON) for the Zombies tab",
        include_in_web_ui=False,
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    """The harness's rows; one row saying why when the file cannot be read yet."""
    try:
        return json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [{"figure": "harness figures", "value": f"not readable: {error}", "source": ""}]


@events.init.add_listener
def _add_tab(environment: Environment, web_ui: Any = None, **_kwargs: Any) -> None:
    options = environment.parsed_options
    live = getattr(options, "reaperlab_live", "") if options else ""
    if web_ui is None or not live:
        return
    from flask import request  # Locust's web UI runs on Flask; only needed with it

    path = Path(live)
    web_ui.template_args["extended_tabs"] = [{"title": "Zombies", "key": TAB}]
    web_ui.template_args["extended_tables"] = [{"key": TAB, "structure": COLUMNS}]

    @web_ui.app.after_request
    def _extend_stats(response: Any) -> Any:
        if request.path != "/stats/requests" or response.status_code != 200:
            return response
        body = response.get_json(silent=True)
        if isinstance(body, dict):
            body["extended_stats"] = [{"key": TAB, "data": read_rows(path)}]
            response.set_data(json.dumps(body))
        return response
