"""The harness's part of every Locust run, loaded beside the locustfile (``-f hooks,file``).

A user's own locustfile needs nothing from reaperlab: this file adds the options the
harness passes (so Locust knows them), paces users that have no wait time of their own
to the total ``--rate``, and rewrites the CSVs with the final figures at exit. It
defines no User class, so it changes nothing else about the locustfile beside it.

Never imported by the harness or the tests: gevent, which Locust brings, patches
fork, waitpid and SIGCHLD for the whole process it is imported into.
"""

from __future__ import annotations

import csv
import logging

import locust.stats
from locust import User, constant_throughput, events
from locust.env import Environment
from locust.runners import WorkerRunner

# Locust writes its CSVs every second but flushes them every 5 s; the harness's
# live view reads the history and failures files, so flush on every write.
locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 0

log = logging.getLogger("reaperlab")


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    parser.add_argument(
        "--reaperlab-rate",
        type=float,
        default=0.0,
        help="total requests/s over all users (0: as fast as they can)",
        include_in_web_ui=False,
    )
    parser.add_argument(
        "--reaperlab-expect",
        default="",
        help="what the built-in users request and accept (JSON, from the harness)",
        include_in_web_ui=False,
    )


_environment: Environment | None = None


@events.init.add_listener
def _prepare(environment: Environment, **_kwargs) -> None:
    """Keep the environment for the final CSVs; pace users that do not pace themselves."""
    global _environment
    _environment = environment
    for user_class in environment.user_classes:
        if user_class.wait_time is User.wait_time:
            user_class.wait_time = _paced
        else:
            log.info("%s keeps its own wait_time; --rate does not pace it", user_class.__name__)


def _paced(user: User) -> float:
    """Per-user pacing derived from the total rate, so --rate means the whole load."""
    options = user.environment.parsed_options
    rate = getattr(options, "reaperlab_rate", 0.0) if options else 0.0
    if rate <= 0:
        return 0.0
    return constant_throughput(rate / max(options.num_users, 1))(user)


@events.quit.add_listener
def _write_final_stats(**_kwargs) -> None:
    """Rewrite the stats CSVs with the final figures.

    Locust's CSV writer runs once a second and not again at shutdown, so its
    files miss the last second of requests; the harness cross-checks request
    counts against the server's and the sampler's, and needs them exact.
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
