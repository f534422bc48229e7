"""Completed requests at 10 Hz, on the samples' clock: Locust's side of the reference line.

Imported by loadtest/in_locust/locust_hooks.py, which the harness loads beside every locustfile, in
Locust's own process: never imported by the harness or the tests (gevent patches fork,
waitpid and SIGCHLD in whatever process imports it).

**The request timeline.** Locust's history CSV has one row a second, stamped with whole
seconds: too coarse to lay beside samples taken every 50 ms (the zombie line ran up to
a second ahead of the requests line). Here the runner's running totals are read ten
times a second and written with the unix time of the reading, the clock the sampler
uses, into the run directory's request-timeline file (diagnostics.contract.REQUESTS).

- Local runner: the totals are Locust's own, updated as each request completes
  (``events.request``), so a row is exact at its time stamp.
- ``--processes N`` (master and workers): requests complete on the workers, which send
  their stats to the master every ``WORKER_REPORT_INTERVAL`` (3 s by default). The
  workers' interval is lowered to ``REPORT_INTERVAL_S`` here, so the master's totals lag
  the truth by at most that much plus the message's trip; rows are written by the master
  only.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import IO, Any

import gevent
import locust.runners
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from diagnostics.contract import REQUEST_COLUMNS, REQUESTS

TIMELINE_HZ = 10
REPORT_INTERVAL_S = 1 / TIMELINE_HZ


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
