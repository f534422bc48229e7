"""Harness hooks for Locust: completed requests at 10 Hz, and users that start out of step.

Loaded by Locust beside the user classes (``-f locustfile.py,locust_timeline.py``), in
Locust's own process: never imported by the harness or the tests (gevent patches fork,
waitpid and SIGCHLD in whatever process imports it).

**The request timeline.** Locust's history CSV has one row a second, stamped with whole
seconds: too coarse to lay beside samples taken every 50 ms (the zombie line ran up to
a second ahead of the requests line). Here the runner's running totals are read ten
times a second and written with the unix time of the reading, the clock the sampler
uses, into the run directory's request-timeline file (reports.rundir.REQUESTS).

- Local runner: the totals are Locust's own, updated as each request completes
  (``events.request``), so a row is exact at its time stamp.
- ``--processes N`` (master and workers): requests complete on the workers, which send
  their stats to the master every ``WORKER_REPORT_INTERVAL`` (3 s by default). The
  workers' interval is lowered to ``REPORT_INTERVAL_S`` here, so the master's totals lag
  the truth by at most that much plus the message's trip; rows are written by the master
  only.

**Pacing at random phases.** User classes that set no ``wait_time`` of their own are
paced so that all users together send ``--reaperlab-rate`` requests/s. With the same
period every user would fire in step (20 users at 100 requests/s: all 20 every 0.2 s),
and the server would see bursts of 20 with nothing between. Each user first waits a
random fraction of its period, then keeps its own schedule, so the load arrives spread
over the period.
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path
from typing import IO, Any

import gevent
import locust.runners
from locust import User, events
from locust.env import Environment
from locust.runners import WorkerRunner

from reports.rundir import REQUEST_COLUMNS, REQUESTS

TIMELINE_HZ = 10
REPORT_INTERVAL_S = 1 / TIMELINE_HZ
_DUE = "_reaperlab_due"


def period(user: User) -> float:
    """Seconds between one user's requests so that all users together make --reaperlab-rate."""
    options = user.environment.parsed_options
    rate = getattr(options, "reaperlab_rate", 0.0) if options else 0.0
    return max(options.num_users, 1) / rate if rate > 0 else 0.0


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


class Timeline:
    """Writes (time, requests, failures) rows from the runner's totals, ten a second."""

    def __init__(self, environment: Environment, path: Path) -> None:
        self._environment = environment
        self._file: IO[str] = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(REQUEST_COLUMNS)
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self.write()
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        tick = 1 / TIMELINE_HZ
        deadline = time.monotonic()
        while True:
            deadline += tick
            gevent.sleep(max(deadline - time.monotonic(), 0))
            self.write()

    def write(self) -> None:
        if self._file.closed:
            return
        runner = self._environment.runner
        total = runner.stats.total if runner is not None else None
        if total is None:
            return
        self._writer.writerow([f"{time.time():.3f}", total.num_requests, total.num_failures])
        self._file.flush()

    def close(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        self.write()
        self._file.close()


_timeline: Timeline | None = None


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    global _timeline
    options = environment.parsed_options
    if getattr(options, "reaperlab_rate", 0.0):
        # A class with a wait_time of its own keeps it: its author chose its pacing.
        for user_class in environment.user_classes:
            if user_class.wait_time is User.wait_time:
                user_class.wait_time = paced
                user_class.on_start = out_of_step(user_class.on_start)
    if isinstance(environment.runner, WorkerRunner):
        locust.runners.WORKER_REPORT_INTERVAL = REPORT_INTERVAL_S
        return
    prefix = getattr(options, "csv_prefix", None) if options else None
    if prefix:
        _timeline = Timeline(environment, Path(prefix).parent / REQUESTS)


@events.test_start.add_listener
def _on_test_start(**_kwargs: Any) -> None:
    if _timeline is not None:
        _timeline.start()


@events.test_stop.add_listener
def _on_test_stop(**_kwargs: Any) -> None:
    if _timeline is not None:
        _timeline.write()


@events.quit.add_listener
def _on_quit(**_kwargs: Any) -> None:
    if _timeline is not None:
        _timeline.close()
