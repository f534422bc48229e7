"""Locust, always as its own process, and what its CSV files say while it runs.

The harness never imports locust: gevent would patch fork, waitpid and SIGCHLD
in the harness itself, and a forking server started from there would have its
children reaped behind its back (hiding the very bug under study).
"""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from diagnostics import contract
from loadtest import defaults
from loadtest.expectations import Expectations
from loadtest.processes import ManagedProcess
from reports.files import read_table
from reports.locust import failure_reasons as reasons_from_table
from reports.locust import history_from_table, load_totals

IN_LOCUST = Path(__file__).with_name("in_locust")
"""The package that runs in Locust's process: the harness gives Locust its files by path
and never imports them."""
LOCUSTFILE = IN_LOCUST / "locustfile.py"
RAW_LOCUSTFILE = IN_LOCUST / "locust_raw.py"
HOOKS = IN_LOCUST / "locust_hooks.py"
"""Loaded beside every locustfile, the user's own included: options, pacing at random
phases, the 10 Hz request timeline, final CSVs."""


@dataclass(frozen=True, slots=True)
class LoadShape:
    users: int
    rate: float
    """Total requests/s over all users; 0 means as fast as they can."""
    duration: int
    processes: int = defaults.PROCESSES.default


def start_locust(
    url: str,
    shape: LoadShape,
    folder: Path,
    locustfile: Path,
    expectations: Expectations = Expectations(),  # noqa: B008 - frozen, never mutated
    front_args: Sequence[str] | None = None,
    master_args: Sequence[str] = (),
) -> ManagedProcess:
    """Locust against ``url``: headless for ``shape.duration``, or with its web UI
    (``front_args``: loadtest.web's, and then the harness ends it); ``master_args``
    make it the master of workers elsewhere (loadtest.distributed)."""
    if front_args is None:
        front_args = ["--headless", "--only-summary", "--run-time", f"{shape.duration}s"]
    command = [
        sys.executable, "-m", "locust",
        "-f", f"{HOOKS},{locustfile.resolve()}",
        *front_args,
        *master_args,
        "--host", url,
        "--users", str(shape.users),
        "--spawn-rate", str(shape.users),
        "--reaperlab-rate", str(shape.rate),
        "--reaperlab-per-user-rate", f"{shape.rate / shape.users:g}",
        "--reaperlab-expect", expectations.to_option(),
        "--csv", str(folder.resolve() / contract.LOCUST_PREFIX), "--csv-full-history",
        "--stop-timeout", "2",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    if shape.processes > 1:
        command += ["--processes", str(shape.processes)]
    # The harness may freeze Locust (SIGSTOP): if it dies then, only SIGKILL ends a stopped
    # process, for Locust and, through the variable, for the workers it forks.
    kill = signal.SIGKILL
    return ManagedProcess(
        "locust", command, folder / contract.LOCUST_LOG, cwd=folder, death_signal=kill,
        env={contract.WORKER_DEATH_SIGNAL: str(int(kill))},
    )  # fmt: skip


def start_timeout(shape: LoadShape) -> float:
    """How long Locust may take beyond its run time (start-up, stopping users, CSV writing)."""
    return 20.0 + 5.0 * shape.processes + math.ceil(shape.duration * 0.1)


@dataclass(frozen=True, slots=True)
class LoadProgress:
    requests: int | None
    failures: int | None
    rps: float | None


class FailureReader:
    """The most frequent failure reason for the live view, which ticks four times a second.

    Locust rewrites its failures file once a second; it is parsed again only when it
    changed, not on every tick of a long run.
    """

    def __init__(self, folder: Path) -> None:
        self._path = folder / contract.FAILURES
        self._stamp: tuple[int, int] | None = None
        self._reasons: list[tuple[str, int]] = []

    def top_failure(self) -> str | None:
        """The most frequent failure reason so far, with its count; None while none failed."""
        try:
            status = os.stat(self._path)
        except OSError:
            return None
        stamp = (status.st_mtime_ns, status.st_size)
        if stamp != self._stamp:
            self._stamp, self._reasons = stamp, failure_reasons(self._path.parent)
        return _reason_text(self._reasons[0]) if self._reasons else None


def _reason_text(reason: tuple[str, int]) -> str:
    return f"{reason[0]} (x{reason[1]})"


def read_totals(folder: Path, until: float | None = None) -> tuple[LoadProgress, str | None]:
    """The load's requests, failures and rate, as of ``until`` (unix time) if given, and
    their source: the request timeline, else Locust's stats or history (reports.locust)."""
    history_table = read_table(folder / contract.HISTORY).value
    totals, source = load_totals(
        read_table(folder / contract.REQUESTS).value,
        read_table(folder / contract.STATS).value,
        history_from_table(history_table) if history_table is not None else None,
        until,
    )
    if totals is None:
        return LoadProgress(None, None, None), None
    return LoadProgress(totals.requests, totals.failures, totals.rps), source


def failure_reasons(folder: Path) -> list[tuple[str, int]]:
    """Why requests failed, most frequent first, from Locust's failures CSV (empty if none)."""
    table = read_table(folder / contract.FAILURES).value
    return reasons_from_table(table) if table is not None else []
