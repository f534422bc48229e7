"""The harness's part of every Locust run, loaded beside the locustfile (``-f hooks,file``).

A user's own locustfile needs nothing from reaperlab: this file adds the options the
harness passes (so Locust knows them), paces users that have no wait time of their own
to the total ``--rate`` at random phases, writes the 10 Hz request timeline
(loadtest/in_locust/timeline.py), and rewrites the CSVs with the final figures at exit. It
defines no User class, so it changes nothing else about the locustfile beside it.

**Pacing at random phases.** With the same period every user would fire in step (20
users at 100 requests/s: all 20 every 0.2 s), and the server would see bursts of 20 with
nothing between. Each user first waits a random fraction of its period, then keeps its
own schedule, so the load arrives spread over the period.

Never imported by the harness or the tests: gevent, which Locust brings, patches
fork, waitpid and SIGCHLD for the whole process it is imported into.
"""

from __future__ import annotations

import csv
import logging
import random
import time
from typing import Any

import gevent
import locust.stats
from locust import User, events
from locust.env import Environment
from locust.runners import WorkerRunner

import loadtest.in_locust.timeline  # noqa: F401 - its listeners write the request timeline
import loadtest.in_locust.workers  # noqa: F401 - per-worker figures of a distributed run
import loadtest.in_locust.zombies_tab  # noqa: F401 - the Zombies tab of --web

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
    parser.add_argument(
        "--reaperlab-per-user-rate",
        type=float,
        default=0.0,
        help="requests/s of each user (0: from --reaperlab-rate and the user count)",
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
            user_class.wait_time = paced
            # Replacing the method on the user's own class is the point: each user starts so.
            user_class.on_start = out_of_step(user_class.on_start)  # type: ignore[method-assign]
        else:
            log.info("%s keeps its own wait_time; --rate does not pace it", user_class.__name__)


_DUE = "_reaperlab_due"


def period(user: User) -> float:
    """Seconds between one user's requests so that all users together make --reaperlab-rate.

    The harness gives --reaperlab-per-user-rate (its rate over its users): Locust's
    workers elsewhere are not told the user count, and in the web UI it changes while
    the load runs (each user keeps its rate, so more users make more load).
    """
    options = user.environment.parsed_options
    per_user = getattr(options, "reaperlab_per_user_rate", 0.0) if options else 0.0
    if per_user > 0:
        return 1 / per_user
    rate = getattr(options, "reaperlab_rate", 0.0) if options else 0.0
    return max(options.num_users or 1, 1) / rate if rate > 0 else 0.0


def paced(user: User) -> float:
    """The wait before the user's next request, on its own fixed schedule.

    Unlike Locust's ``constant_throughput``, which pulls every user back onto the grid
    of its start, the schedule keeps the phase the first wait gave it. A user that falls
    behind starts the next request at once and does not burst to catch up.
    """
    step = period(user)
    if step <= 0:
        return 0.0
    now = time.perf_counter()
    due = user.__dict__.get(_DUE)
    due = now + random.uniform(0, step) if due is None else max(due + step, now)
    setattr(user, _DUE, due)
    return due - now


def out_of_step(on_start: Any) -> Any:
    """``on_start`` preceded by a wait of a random fraction of the user's period.

    Users spawn together, so without it their first requests would all go at once.
    """

    def start(user: User) -> None:
        step = period(user)
        if step > 0:
            gevent.sleep(random.uniform(0, step))
            setattr(user, _DUE, time.perf_counter())
        on_start(user)

    return start


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
