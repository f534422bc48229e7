"""``--expect-workers N``: Locust as a master here, its workers anywhere the master is reachable.

The server, the sampler and Locust's master run on this machine, as for any run; the
workers (started elsewhere with :func:`worker_command`) fetch the locustfile and the
harness's hooks from the master (Locust's ``-f -``), so they need only reaperlab
installed, not a copy of the files. The master waits at most ``--worker-timeout``
seconds for all N; when they do not come Locust gives up and the harness says so in
one line (:func:`check_workers`), with nothing left running.

The load goes to the server the harness started, at the address the workers reach:
127.0.0.1 unless ``--server-host`` says otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics import contract
from diagnostics.contract import Status
from loadtest import defaults
from loadtest.errors import HarnessError

DEFAULT_MASTER_PORT = 5557
"""Locust's own default port for workers to reach the master."""
GAVE_UP = "Gave up waiting for workers to connect"
"""What Locust's master logs when --expect-workers-max-wait runs out."""


class NoWorkers(HarnessError):
    status = Status.NO_WORKERS


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    expected: int
    bind: str
    """The address the master listens on for workers."""
    port: int = DEFAULT_MASTER_PORT
    timeout: float = defaults.WORKER_TIMEOUT.default
    """Seconds the master waits for all workers before the run fails."""


def locust_args(options: WorkerOptions) -> list[str]:
    return [
        "--master",
        "--master-bind-host", options.bind,
        "--master-bind-port", str(options.port),
        "--expect-workers", str(options.expected),
        "--expect-workers-max-wait", f"{options.timeout:g}",
    ]  # fmt: skip


def worker_command(options: WorkerOptions, master_host: str | None = None) -> str:
    """The one command that starts a worker on another machine (with reaperlab installed)."""
    host = master_host or options.bind
    return f"locust -f - --worker --master-host {host} --master-port {options.port}"


def check_workers(log: Path, options: WorkerOptions) -> None:
    """Raise the one-line error when the master gave up waiting for its workers."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return
    if GAVE_UP in text:
        raise NoWorkers(
            f"expected {options.expected} Locust worker(s) at {options.bind}:{options.port};"
            f" they did not all connect within --worker-timeout {options.timeout:g} s"
        )


def read_workers(folder: Path) -> dict[str, Any] | None:
    """The master's per-worker figures, or None when it wrote none."""
    try:
        return json.loads((folder / contract.WORKERS).read_text())
    except (OSError, ValueError):
        return None
