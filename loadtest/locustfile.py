"""The clients the harness fires at the server (run by Locust as its own process).

Never imported by the harness or the tests: gevent, which Locust brings, patches
fork, waitpid and SIGCHLD for the whole process it is imported into.

Each request checks its body, so a wrong answer counts as a failure, not a success.
"""

from __future__ import annotations

import csv
import random

import locust.stats
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

# Locust writes its CSVs every second but flushes them every 5 s; when a run is cut
# short (no final stats file) the harness's totals come from the history file, so
# flush on every write.
locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 0

NAMES = ["World", "Zhuibing Dan", "Ada", "Grace Hopper", "Linus", "Dennis", "Ken"]


@events.init_command_line_parser.add_listener
def _add_rate_argument(parser) -> None:
    parser.add_argument(
        "--reaperlab-rate",
        type=float,
        default=0.0,
        help="total requests/s over all users (0: as fast as they can)",
        include_in_web_ui=False,
    )


_environment: Environment | None = None


@events.init.add_listener
def _keep_environment(environment: Environment, **_kwargs) -> None:
    global _environment
    _environment = environment


@events.quit.add_listener
def _write_final_stats(**_kwargs) -> None:
    """Rewrite the stats CSVs with the final figures.

    Locust's CSV writer runs once a second and not again at shutdown, so its
    files miss the last second of requests; the harness cross-checks request
    counts against the server's, and needs them exact.
    """
    env = _environment
    prefix = env.parsed_options.csv_prefix if env and env.parsed_options else None
    if env is None or not prefix or isinstance(env.runner, WorkerRunner):
        return
    writer = locust.stats.StatsCSV(env, locust.stats.PERCENTILES_TO_REPORT)
    for suffix, write in (
        ("stats", writer.requests_csv),
        ("failures", writer.failures_csv),
        ("exceptions", writer.exceptions_csv),
    ):
        with open(f"{prefix}_{suffix}.csv", "w", newline="") as file:
            write(csv.writer(file))


class ForkingServerUser(FastHttpUser):
    """Paced by locust_timeline.py (loaded beside this file) to --reaperlab-rate in total."""

    @task
    def greet_someone(self) -> None:
        name = random.choice(NAMES)
        path = "/" if name == "World" else "/" + name.replace(" ", "%20")
        with self.client.get(path, name="/<name>", catch_response=True) as response:
            expected = f"Hello, {name}!\n"
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif response.text != expected:
                response.failure(f"body {response.text[:60]!r}, expected {expected!r}")
