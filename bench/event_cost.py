"""Section 5: the event recorder, at the highest fork rate the machine reaches and on our
server at full speed: events lost (must be 0), what it costs, and whether it slows the
server down.

- fork storm: fork-exit-wait loops, one per core, under one root (bench.forkrate), with
  and without the recorder on that root, in alternating order: the rate held, the
  children recorded against the forks the loops counted, the events lost;
- our server under the bench's load, with and without the recorder: the fork events
  against the server's own ``forked`` counter (printed as it stops), the recorder's CPU
  (its thread's own clock) per child of the server and per event of the machine, how
  late it sees a reap, and the observer effect (with / without, the target the
  sampler's observer section has).

The recorder runs in this process, as it will in the harness; like the server it
watches, it competes for the machine's CPUs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.contenders import OURS
from bench.forkrate import ForkStorm, StormResult
from bench.loadgen import LoadResult, Locust, Wrk
from bench.observer import MIN_RATIO
from bench.rounds import median, paired_ratio, rotated, summarise, target
from bench.settings import BenchSettings
from diagnostics.contract import EventSummary
from diagnostics.event_recorder import EventRecorder


def measure(
    settings: BenchSettings, generator: Wrk | Locust, scratch: Path, out: dict[str, Any]
) -> None:
    """Alternate rounds without and with the recorder; fill ``out`` as they end."""
    folder = scratch / "events"
    storms: dict[bool, list[tuple[StormResult, EventSummary | None]]] = {False: [], True: []}
    served: dict[bool, list[tuple[LoadResult, EventSummary | None, int | None]]] = {
        False: [],
        True: [],
    }
    workers = os.cpu_count() or 1
    for round_index in range(settings.rounds):
        for recorded in rotated((False, True), round_index):
            where = folder / f"storm-{round_index}-{int(recorded)}"
            storms[recorded].append(_storm(settings.seconds, workers, where, recorded))
            out["fork_storm"] = _storm_summary(storms, workers)
        for recorded in rotated((False, True), round_index):
            where = folder / f"server-{round_index}-{int(recorded)}"
            served[recorded].append(_serve(settings, generator, where, recorded))
            out["server"] = _server_summary(served)


def _storm(
    seconds: int, workers: int, folder: Path, recorded: bool
) -> tuple[StormResult, EventSummary | None]:
    storm = ForkStorm(seconds, workers)
    try:
        if not recorded:
            return storm.run(), None
        recorder = EventRecorder(storm.pid, folder)
        recorder.start()
        try:
            result = storm.run()
        finally:
            summary = recorder.stop()
        return result, summary
    finally:
        storm.close()


def _serve(
    settings: BenchSettings, generator: Wrk | Locust, folder: Path, recorded: bool
) -> tuple[LoadResult, EventSummary | None, int | None]:
    """One load on a fresh server, whose ``forked`` counter then covers exactly this run."""
    server = OURS.start(folder)
    summary = None
    try:
        recorder = EventRecorder(server.pid, folder) if recorded else None
        if recorder is not None:
            recorder.start()
        try:
            result = generator.run(server.url, settings.seconds, folder)
            server.process.stop()  # it reaps at shutdown and prints its counters
        finally:
            if recorder is not None:
                summary = recorder.stop()
    finally:
        server.process.stop()
    counters = server.final_counters()
    return result, summary, None if counters is None else counters["forked"]


def _storm_summary(
    storms: dict[bool, list[tuple[StormResult, EventSummary | None]]], workers: int
) -> dict[str, Any]:
    watched = [(result, summary) for result, summary in storms[True] if summary is not None]
    forks = sum(result.forks for result, _ in watched)
    recorded = sum(summary.figures.get("forked", 0) - workers for _, summary in watched)
    return {
        "workers": workers,
        "rate_per_s_without": median(result.rate_per_s for result, _ in storms[False]),
        "rate_per_s_with": median(result.rate_per_s for result, _ in watched),
        "forks": forks,
        "children_recorded": recorded,
        "all_recorded": recorded == forks,
        **_losses([summary for _, summary in watched]),
    }


def _server_summary(
    served: dict[bool, list[tuple[LoadResult, EventSummary | None, int | None]]],
) -> dict[str, Any]:
    watched = [(load, summary, forked) for load, summary, forked in served[True] if summary]
    summaries = [summary for _, summary, _ in watched]
    counted = [forked for _, _, forked in watched]
    recorded = [summary.figures.get("forked", 0) for summary in summaries]
    cpu = sum(summary.cpu_seconds or 0.0 for summary in summaries)
    events = sum(summary.events_read for summary in summaries)
    latencies = [summary.reap_latency_ms or {} for summary in summaries]
    return {
        "without_recorder": summarise([load for load, _, _ in served[False]]),
        "with_recorder": summarise([load for load, _, _ in watched]),
        "forked_counter": None if None in counted else sum(c for c in counted if c is not None),
        "forks_recorded": sum(recorded),
        "matches_counter": None if None in counted else counted == recorded,
        "recorder_cpu_s": cpu,
        "events_read": events,
        "cpu_us_per_event": cpu / events * 1e6 if events else None,
        "cpu_us_per_child": cpu / sum(recorded) * 1e6 if sum(recorded) else None,
        "reap_latency_ms_p99": median(entry.get("p99") for entry in latencies),
        "reap_latency_ms_max": max((entry.get("max") or 0.0 for entry in latencies), default=None),
        "target": target(
            paired_ratio([load for load, _, _ in watched], [load for load, _, _ in served[False]]),
            MIN_RATIO,
        ),
        **_losses(summaries),
    }


def _losses(summaries: list[EventSummary]) -> dict[str, Any]:
    lost = [summary.events_lost for summary in summaries]
    return {
        "events_lost": None if None in lost or not lost else sum(n for n in lost if n is not None),
        "overflows": sum(summary.overflows for summary in summaries),
        "sources": summaries[-1].sources if summaries else None,
    }
