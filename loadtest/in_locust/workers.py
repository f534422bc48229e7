"""Per-worker figures of a distributed run, written by Locust's master at exit.

Imported by loadtest/in_locust/locust_hooks.py in Locust's own process; never by the
harness or the tests (gevent). Every worker sends the master its requests since its last
report; the master adds them up per worker here and writes
:data:`~diagnostics.contract.WORKERS` beside its CSVs when it quits, so the run directory
says which workers took part and how much load each made. A local run (no master) writes
nothing.

A worker Locust forked itself (``--processes``) takes the death signal the harness gave
Locust (:data:`~diagnostics.contract.WORKER_DEATH_SIGNAL`): the kernel clears it on fork,
and a worker frozen with its master (SIGSTOP) must not outlive a master killed then.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from diagnostics.contract import WORKER_DEATH_SIGNAL, WORKERS

PR_SET_PDEATHSIG = 1

_figures: dict[str, dict[str, Any]] = {}
_environment: Environment | None = None


def _worker(client_id: str) -> dict[str, Any]:
    return _figures.setdefault(client_id, {"id": client_id, "requests": 0, "failures": 0})


def _take_the_death_signal() -> None:
    """In a worker just forked (the kernel cleared the master's death signal): take it."""
    death_signal = os.environ.get(WORKER_DEATH_SIGNAL, "")
    if death_signal.isdigit():
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(death_signal))


# Locust loads this file before it forks its workers: each takes the signal the moment it is
# forked, before it could be frozen with its master.
os.register_at_fork(after_in_child=_take_the_death_signal)


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    global _environment
    if isinstance(environment.runner, MasterRunner):
        _environment = environment


@events.worker_connect.add_listener
def _on_connect(client_id: str, **_kwargs: Any) -> None:
    _worker(client_id)


@events.worker_report.add_listener
def _on_report(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    total = data.get("stats_total") or {}
    figures = _worker(client_id)
    figures["requests"] += int(total.get("num_requests", 0))
    figures["failures"] += int(total.get("num_failures", 0))


@events.quit.add_listener
def _write(**_kwargs: Any) -> None:
    env = _environment
    prefix = env.parsed_options.csv_prefix if env and env.parsed_options else None
    if env is None or not prefix:
        return
    workers = sorted(_figures.values(), key=lambda w: w["id"])
    text = json.dumps({"workers": workers, "count": len(workers)}, indent=2) + "\n"
    (Path(prefix).parent / WORKERS).write_text(text)
