"""The event record of a scenario's server tree: every fork, exit and reap, from the
kernel (diagnostics/event_recorder.py), beside the samples.

It starts once the server listens and before the baseline is taken, so the pool a
prefork server forked at start-up is "pre-existing" and each worker it retires or
replaces is named. It stops in the clean-up, after the harness has stopped the server
and reaped the orphans it adopted (stopped earlier, the children the harness reaps
would end the record as zombies), and its figures are of the tree until the harness
asked the server to stop, or until the first Ctrl-C of an interrupted run.

The recorder's thread writes only its own record: the scenario reads its running
counts (:meth:`TreeEvents.counts`, for the live view and the settle) and takes its
summary at the stop, which it alone assigns to scenario.json's ``events``. Where the
record cannot be made at all, the run goes on with the samples, and says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from diagnostics import lifetimes
from diagnostics.contract import EventSummary
from diagnostics.diskio import describe
from diagnostics.event_recorder import EventRecorder
from diagnostics.events import TreeCounts

SAMPLES_SHOWN = 3
"""How many samples that contradict the events the record names (each is a line)."""


class EventSources(StrEnum):
    """Which kernel sources the record may use (``--events``): all the machine has, or
    fewer, to see what a machine without one records, or none (samples alone)."""

    ALL = "all"
    NO_REAP_PROBE = "no-reap-probe"
    """Reaps timed by a pidfd per child, not stamped by the kernel (diagnostics/bpf_reaps.py)."""
    NO_CONNECTOR = "no-connector"
    NO_PIDFDS = "no-pidfds"
    """Reaps found by scans of /proc (neither pidfds nor the kernel's stamps)."""
    OFF = "off"


class TreeEvents:
    """One scenario's event record, from the scenario's own thread."""

    def __init__(self, folder: Path, sources: EventSources = EventSources.ALL) -> None:
        self.folder = folder
        self.sources = sources
        self._recorder: EventRecorder | None = None

    def start(self, pid: int) -> str | None:
        """Start recording the tree of ``pid``; a warning for scenario.json when the
        record cannot be made (the run goes on with the samples alone)."""
        if self.sources is EventSources.OFF:
            return None
        recorder = EventRecorder(
            pid,
            self.folder,
            connector=self.sources is not EventSources.NO_CONNECTOR,
            pidfds=self.sources is not EventSources.NO_PIDFDS,
            reap_probe=self.sources is EventSources.ALL,
        )
        try:
            recorder.start()
        except ProcessLookupError:
            return "no event record: the server was gone before it could start"
        except OSError as error:
            return f"no event record: {describe(error, 'opening events.csv')}; sampled figures only"
        self._recorder = recorder
        return None

    def counts(self) -> TreeCounts | None:
        """The tree's exact counts now; None without a working record."""
        recorder = self._recorder
        if recorder is None or recorder.error is not None:
            return None
        return recorder.counts()

    def stop(
        self,
        until: float | None,
        samples: Sequence[tuple[float, int]],
        server: int | None = None,
    ) -> EventSummary | None:
        """End the record (after the orphans are reaped); its summary, with the figures
        as of ``until`` and the samples up to it checked against the events. ``server``:
        the server's host PID where the root is PID 1 of its namespace, whose own figures
        are then counted apart (the rows whose parent it is). None when there was no
        record."""
        recorder = self._recorder
        if recorder is None:
            return None
        summary = recorder.stop(until)
        if server is not None and recorder.rows:
            end = until if until is not None else summary.ended or math.inf
            is_root = server == summary.root_pid
            summary.server = lifetimes.server_figures(recorder.rows, server, end, is_root)
        if recorder.rows and samples:
            judged = [(t, zombies) for t, zombies in samples if until is None or t <= until]
            problems = lifetimes.cross_check(recorder.rows, judged)
            summary.samples_check = {
                "samples": len(judged),
                "above_events": len(problems),
                "first": problems[:SAMPLES_SHOWN],
            }
        return summary
