"""The Locust process a scenario drives its load with, as the harness handles it.

Frozen at once (SIGSTOP) from any thread when the server must not be loaded any more,
stopped politely from the main thread, and read at the end: its totals, its top
failure reasons, and the CPU it used, which says whether the load generator rather
than the server was the bottleneck.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics.cpumeter import CpuMeter
from loadtest.load import LoadProgress, failure_reasons, read_totals
from loadtest.processes import ManagedProcess

SATURATED_CPU = 0.9
"""Locust's share of a core per process past which the load generator, not the server,
may be the bottleneck: a warning in scenario.json, a "!" in the live view."""
REASONS_KEPT = 5
"""How many failure reasons scenario.json keeps, most frequent first."""


@dataclass(frozen=True, slots=True)
class LocustReport:
    """What a Locust run did, read once it exited: scenario.json's ``locust_exit``,
    ``load``, ``locust_cpu`` and ``locust_cpu_scope``, and a warning."""

    exit_code: int | None
    """Negative for a signal; None if it could not be waited for."""
    totals: LoadProgress
    reasons: tuple[tuple[str, int], ...]
    """Why requests failed, most frequent first (at most REASONS_KEPT)."""
    cpu: float | None
    """Cores Locust used on average over the load."""
    cpu_scope: str | None
    """Whose CPU ``cpu`` is, when not all of Locust's."""
    warning: str | None
    """That Locust, not the server, may have been the bottleneck."""

    def load(self) -> dict[str, Any]:
        """scenario.json's ``load``."""
        return {
            "requests": self.totals.requests,
            "failures": self.totals.failures,
            "rps": self.totals.rps,
            "failure_reasons": [
                {"reason": reason, "count": count} for reason, count in self.reasons
            ],
        }


class LocustRun:
    """One running Locust, and whether the harness (not Locust itself) ended it."""

    def __init__(self, process: ManagedProcess) -> None:
        self.process = process
        self.stopped_by_harness = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def running(self) -> bool:
        return self.process.running()

    def freeze(self) -> None:
        """Stop the load at once; safe from the sampler's thread."""
        self.process.signal_group(signal.SIGSTOP)

    def stop(self, resume: bool = False) -> None:
        self.stopped_by_harness = True
        self.process.popen.send_signal(signal.SIGTERM)
        if resume:
            self.process.signal_group(signal.SIGCONT)
        self.process.stop(timeout=15)

    def end(self) -> None:
        """On every path out: ended and reaped, frozen or not."""
        self.process.signal_group(signal.SIGCONT)  # a stopped process cannot act on TERM
        self.process.stop(timeout=15)

    def report(
        self,
        folder: Path,
        meter: CpuMeter,
        seconds: float,
        processes: int,
        remote_workers: bool,
    ) -> LocustReport:
        """Once it has exited: its exit, totals, failure reasons and CPU."""
        code = self.process.wait(15)
        cores = meter.cpu_seconds / seconds if seconds > 0 else None
        scope = warning = None
        if remote_workers:
            scope = "the master only: workers run elsewhere, unmeasured"
        elif (per_process := (cores or 0) / processes) >= SATURATED_CPU:
            warning = (
                f"Locust used {per_process:.0%} of a core per process: the load generator, not"
                " the server, may be the bottleneck (try --processes 2 or a lower --rate)"
            )
        return LocustReport(
            exit_code=code,
            totals=read_totals(folder),
            reasons=tuple(failure_reasons(folder)[:REASONS_KEPT]),
            cpu=None if cores is None else round(cores, 3),
            cpu_scope=scope,
            warning=warning,
        )

    def last_line(self) -> str:
        try:
            lines = self.process.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else "no output"
