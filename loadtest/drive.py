"""The Locust process a scenario drives its load with, as the harness handles it.

Frozen at once (SIGSTOP) from any thread when the server must not be loaded any more,
stopped from the main thread (one SIGTERM, with SIGCONT so that a frozen Locust can act
on it, then SIGKILL after :data:`LOCUST_GRACE`), and read at the end: its totals, its top
failure reasons, and the CPU it used, which says whether the load generator rather
than the server was the bottleneck. If the harness dies while Locust is frozen, the
kernel's death signal for Locust is SIGKILL (loadtest/load.py), the one signal a stopped
process acts on: it is never left stopped.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics.cpumeter import CpuMeter
from diagnostics.errors import DiagnosticsError
from diagnostics.proctable import decode_exit_status, read_stat, task_children
from loadtest.load import LoadProgress, failure_reasons, read_totals
from loadtest.processes import ManagedProcess, Stopped

SATURATED_CPU = 0.9
"""Locust's share of a core per process past which the load generator, not the server,
may be the bottleneck: a warning in scenario.json, a "!" in the live view."""
REASONS_KEPT = 5
"""How many failure reasons scenario.json keeps, most frequent first."""
_LOGGED = re.compile(r"^\[[^]]+\] [^/]+/\w+/[\w.]+: (.*)$")
"""A line of Locust's own logger ("[time] host/LEVEL/module: message"); the message."""
_SIGNALLED = re.compile(r"Got SIG\w+ signal|KeyboardInterrupt")
LOCUST_GRACE = 15.0
"""Seconds Locust has after its SIGTERM to write its final figures and exit (its own
--stop-timeout is 2 s), before SIGKILL."""


@dataclass(frozen=True, slots=True)
class LostWorker:
    """A Locust worker process (``--processes``) that ended during the load: scenario.json's
    ``lost_workers``."""

    pid: int
    ended: str
    """How: its exit status as its zombie holds it ("SIGKILL", "1", or "0" before the run
    time was over)."""
    at_s: float
    """Seconds into the load when the harness saw it."""


@dataclass(frozen=True, slots=True)
class LocustReport:
    """What a Locust run did, read once it exited: scenario.json's ``locust_exit``,
    ``load``, ``locust_cpu`` and ``locust_cpu_scope``, and a warning."""

    exit_code: int | None
    """Negative for a signal; None if it could not be waited for."""
    totals: LoadProgress
    source: str | None
    """Where ``totals`` come from (a contract.Source word): the request timeline."""
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
        self._lost: dict[int, LostWorker] = {}
        self._workers: set[int] = set()
        """Locust's worker processes seen running."""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def running(self) -> bool:
        return self.process.running()

    def freeze(self, why: str) -> None:
        """Stop the load at once; safe from the sampler's thread."""
        self.process.signal_group(signal.SIGSTOP, f"freeze: {why}")

    def stop(self) -> Stopped:
        """The harness ends the load: one SIGTERM (and SIGCONT, frozen or not), then SIGKILL."""
        self.stopped_by_harness = self.stopped_by_harness or self.running()
        return self.process.stop(LOCUST_GRACE, resume=True)

    def end(self) -> Stopped:
        """On every path out: ended and reaped, frozen or not."""
        return self.process.stop(LOCUST_GRACE, resume=True)

    def lost_workers(self, elapsed: float, run_over: bool) -> list[LostWorker]:
        """Workers Locust forked (``--processes``) that ended while it runs, each named once.

        A worker is Locust's child: one seen running that is no longer there (Locust, under
        gevent, reaps at once) or is a zombie (with its exit status) has ended. Before the
        run time is ``run_over`` any ending is a loss; after it, only by a signal or an
        error (a zombie's status says), as workers end when Locust quits.
        """
        try:
            children = task_children(self.pid)
        except DiagnosticsError:
            return []
        ended: dict[int, str] = {}
        for pid in children:
            try:
                stat = read_stat(pid)
            except DiagnosticsError:
                continue
            if not stat.zombie:
                self._workers.add(pid)
            elif stat.exit_status is not None:
                ended[pid] = decode_exit_status(stat.exit_status)
            else:
                ended[pid] = "?"
        for pid in self._workers - children:
            ended.setdefault(pid, "gone (reaped by Locust)")
        new = []
        for pid, how in sorted(ended.items()):
            if pid in self._lost or (run_over and how in ("0", "gone (reaped by Locust)")):
                continue
            self._lost[pid] = LostWorker(pid, how, round(elapsed, 1))
            new.append(self._lost[pid])
        return new

    def report(
        self,
        folder: Path,
        meter: CpuMeter,
        seconds: float,
        processes: int,
        remote_workers: bool,
        until: float | None = None,
    ) -> LocustReport:
        """Once it has exited: its exit, totals (as of ``until``, unix time, if given),
        failure reasons and CPU."""
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
        totals, source = read_totals(folder, until)
        return LocustReport(
            exit_code=code,
            totals=totals,
            source=source,
            reasons=tuple(failure_reasons(folder)[:REASONS_KEPT]),
            cpu=None if cores is None else round(cores, 3),
            cpu_scope=scope,
            warning=warning,
        )

    def last_line(self) -> str:
        """What Locust's log says about how it ended: its line about a signal it got, else
        its last line."""
        try:
            lines = self.process.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        signalled = [line for line in lines if _SIGNALLED.search(line)]
        last = (signalled or lines or ["no output"])[-1]
        match = _LOGGED.match(last)
        return match.group(1) if match else last.strip()
