"""What a running scenario shows while it runs: the live view's line (loadtest/live.py)
and, under --web, the figures of Locust's Zombies tab (loadtest/web.py).

Both are read from what is already on disk or in memory (the event record's running
counts, exact, where it runs; else the sampler's latest sample; Locust's timeline and
failures): showing progress measures nothing new.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from diagnostics.contract import Phase, ScenarioRecord, Status
from diagnostics.cpumeter import CpuMeter
from diagnostics.events import TreeCounts
from diagnostics.sampler import Sample
from loadtest import web
from loadtest.handoff import SamplerHandoff
from loadtest.live import Progress, View
from loadtest.load import FailureReader, LoadProgress, LoadShape
from loadtest.scenario_files import ScenarioFiles
from loadtest.timeline import TimelineReader


class LiveFeed:
    """The live figures of one scenario, shown from the scenario's own thread.

    It reads the scenario's record and writes nothing into it: a failure to write the
    Zombies tab's file is returned, for the scenario to record as a warning.
    """

    def __init__(
        self,
        shape: LoadShape,
        folder: Path,
        view: View,
        record: ScenarioRecord,
        sampled: SamplerHandoff,
        latest: Callable[[], Sample | None],
        counts: Callable[[], TreeCounts | None] = lambda: None,
    ) -> None:
        self.shape = shape
        self.folder = folder
        self.view = view
        self.record = record
        self._sampled = sampled
        self._latest = latest
        self._counts = counts
        self._load_progress = TimelineReader(folder)
        self._failures = FailureReader(folder)
        self._live_file = ScenarioFiles(folder, None)

    def progress(
        self, phase: Phase | Status, elapsed: float = 0.0, meter: CpuMeter | None = None
    ) -> None:
        now = web.TreeNow.of(self._latest(), self._counts(), self._sampled.peak)
        load = self._load_progress.read() if phase == Phase.LOAD else _final_load(self.record)
        top_failure = self._failures.top_failure()
        cpu = None
        if meter is not None and elapsed > 0:
            cpu = meter.cpu_seconds / elapsed / self.shape.processes
        self.view.update(
            Progress(
                scenario=self.record.name,
                phase=phase,
                elapsed=elapsed,
                duration=self.shape.duration,
                rps=load.rps if load else None,
                requests=load.requests if load else None,
                failures=load.failures if load else None,
                alive=now.alive if now else None,
                zombies=now.zombies if now else None,
                zombies_exact=now.exact if now else None,
                fds=sample.fds if (sample := self._latest()) else None,
                locust_cpu=cpu,
                top_failure=top_failure,
            )
        )

    def publish(self) -> str | None:
        """The Zombies tab's rows, rewritten for Locust's UI to serve (--web runs); the
        warning to record if they could not be, the first time only."""
        load = self._load_progress.read()
        sample = self._latest()
        now = web.TreeNow.of(sample, self._counts(), self._sampled.peak)
        rows = web.live_rows(now, sample, self.record, load.requests if load else None)
        # Whole, so Locust never reads half of it.
        return self._live_file.write(web.LIVE_FILE, {"rows": rows})


def _final_load(record: ScenarioRecord) -> LoadProgress | None:
    load = record.load
    return None if load is None else LoadProgress(load["requests"], load["failures"], load["rps"])
