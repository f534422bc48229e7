"""What a running scenario shows while it runs: the live view's line (loadtest/live.py)
and, under --web, the figures of Locust's Zombies tab (loadtest/web.py).

Both are read from what is already on disk or in memory (the sampler's latest sample,
Locust's timeline and failures): showing progress measures nothing new.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from diagnostics.cpumeter import CpuMeter
from diagnostics.sampler import Sample
from loadtest import web
from loadtest.live import Progress, View
from loadtest.load import FailureReader, LoadProgress, LoadShape
from loadtest.scenario_files import ScenarioFiles
from loadtest.timeline import TimelineReader


class LiveFeed:
    """The live figures of one scenario; a failure to write them is a warning in its record."""

    def __init__(
        self,
        scenario: str,
        shape: LoadShape,
        folder: Path,
        view: View,
        record: dict[str, Any],
        latest: Callable[[], Sample | None],
    ) -> None:
        self.scenario = scenario
        self.shape = shape
        self.folder = folder
        self.view = view
        self.record = record
        self._latest = latest
        self._load_progress = TimelineReader(folder)
        self._failures = FailureReader(folder)
        self._live_file = ScenarioFiles(folder, None)

    def progress(self, phase: str, elapsed: float = 0.0, meter: CpuMeter | None = None) -> None:
        sample = self._latest()
        load = self._load_progress.read() if phase == "load" else _final_load(self.record)
        top_failure = self._failures.top_failure()
        cpu = None
        if meter is not None and elapsed > 0:
            cpu = meter.cpu_seconds / elapsed / self.shape.processes
        self.view.update(
            Progress(
                scenario=self.scenario,
                phase=phase,
                elapsed=elapsed,
                duration=self.shape.duration,
                rps=load.rps if load else None,
                requests=load.requests if load else None,
                failures=load.failures if load else None,
                alive=sample.alive if sample else None,
                zombies=sample.zombies if sample else None,
                fds=sample.fds if sample else None,
                locust_cpu=cpu,
                top_failure=top_failure,
            )
        )

    def publish(self) -> None:
        """The Zombies tab's rows, rewritten for Locust's UI to serve (--web runs)."""
        load = self._load_progress.read()
        rows = web.live_rows(self._latest(), self.record, load.requests if load else None)
        # Whole, so Locust never reads half of it; a failure is a warning, said once.
        failure = self._live_file.write(web.LIVE_FILE, {"rows": rows})
        if failure is not None:
            self.record["warnings"].append(failure)


def _final_load(record: dict[str, Any]) -> LoadProgress | None:
    load = record["load"]
    return None if load is None else LoadProgress(load["requests"], load["failures"], load["rps"])
