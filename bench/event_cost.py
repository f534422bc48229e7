"""Section 5: the event recorder, at the highest fork rate the machine reaches and on our
server at full speed: events lost (must be 0), what it costs, and whether it slows the
server down.

- fork storm: fork-exit-wait loops, one per core, under one root (bench.forkrate), with
  and without the recorder on that root, in alternating order: the rate held, the
  children recorded against the forks the loops counted, the events lost;
- our server under the bench's load with the recorder, a fresh server each round: the
  fork events against the server's own ``forked`` counter (printed as it stops), the
  recorder's CPU (its thread's own clock) per child of the server and per event of the
  machine, how late it sees a reap;
- the observer effect: one server, loads without and with the recorder in pairs, as the
  sampler's observer section does (a fresh server per run added its own swing, up to
  20% between two servers on this VM, to the few percent looked for), and the share
  of the machine's CPU the recorder's thread took during its loads (what it takes from
  the server was more, about twice that; likely because its turns fall between the
  server parent's accepts, the server's one serial step).

The recorder runs in this process, as it will in the harness; like the server it
watches, it competes for the machine's CPUs.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.contenders import OURS
from bench.forkrate import ForkStorm, StormResult
from bench.loadgen import LoadResult, Locust, Wrk
from bench.observer import MIN_RATIO, PAIRS_PER_ROUND
from bench.rounds import median, pair_ratios, rotated, summarise, target
from bench.settings import BenchSettings
from diagnostics.contract import EventSummary
from diagnostics.event_recorder import EventRecorder
from loadtest.target import Target


def measure(
    settings: BenchSettings, generator: Wrk | Locust, scratch: Path, out: dict[str, Any]
) -> None:
    """Alternate rounds without and with the recorder; fill ``out`` as they end."""
    folder = scratch / "events"
    storms: dict[bool, list[tuple[StormResult, EventSummary | None]]] = {False: [], True: []}
    counted: list[tuple[LoadResult, EventSummary | None, int | None]] = []
    paired: dict[bool, list[SharedRun]] = {False: [], True: []}
    workers = os.cpu_count() or 1
    with ExitStack() as stack:
        shared = OURS.start(folder / "shared")
        stack.callback(shared.process.stop)
        for round_index in range(settings.rounds):
            for recorded in rotated((False, True), round_index):
                where = folder / f"storm-{round_index}-{int(recorded)}"
                storms[recorded].append(_storm(settings.seconds, workers, where, recorded))
                out["fork_storm"] = _storm_summary(storms, workers)
            counted.append(_serve(settings, generator, folder / f"server-{round_index}"))
            for pair in range(PAIRS_PER_ROUND):
                turn = round_index * PAIRS_PER_ROUND + pair
                for recorded in rotated((False, True), turn):
                    where = folder / f"shared-{turn}-{int(recorded)}"
                    paired[recorded].append(_watch(settings, generator, shared, where, recorded))
            out["server"] = _server_summary(counted, paired)


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
    settings: BenchSettings, generator: Wrk | Locust, folder: Path
) -> tuple[LoadResult, EventSummary | None, int | None]:
    """One load on a fresh server, recorded: its ``forked`` counter covers exactly this run."""
    server = OURS.start(folder)
    summary = None
    try:
        recorder = EventRecorder(server.pid, folder)
        recorder.start()
        try:
            result = generator.run(server.url, settings.seconds, folder)
            server.process.stop()  # it reaps at shutdown and prints its counters
        finally:
            summary = recorder.stop()
    finally:
        server.process.stop()
    counters = server.final_counters()
    return result, summary, None if counters is None else counters["forked"]


@dataclass(frozen=True, slots=True)
class SharedRun:
    """One load on the shared server, with the recorder (``summary``) or without."""

    load: LoadResult
    summary: EventSummary | None
    machine_cpu_s: float
    """CPU seconds the whole machine spent during the load (every CPU, steal left out)."""


def _watch(
    settings: BenchSettings, generator: Wrk | Locust, server: Target, folder: Path, recorded: bool
) -> SharedRun:
    """One load on the shared server, with the recorder or without."""
    recorder = EventRecorder(server.pid, folder) if recorded else None
    if recorder is not None:
        recorder.start()
    try:
        before = _busy_seconds()
        load = generator.run(server.url, settings.seconds, folder)
        spent = _busy_seconds() - before
    finally:
        summary = None if recorder is None else recorder.stop()
    return SharedRun(load, summary, spent)


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - times.iowait - times.steal


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
    counted: list[tuple[LoadResult, EventSummary | None, int | None]],
    paired: dict[bool, list[SharedRun]],
) -> dict[str, Any]:
    recorded_runs = [(load, summary, forked) for load, summary, forked in counted if summary]
    summaries = [summary for _, summary, _ in recorded_runs]
    counters = [forked for _, _, forked in recorded_runs]
    recorded = [summary.figures.get("forked", 0) for summary in summaries]
    watched = [run for run in paired[True] if run.summary is not None]
    shared = [run.summary for run in watched if run.summary is not None]
    every = summaries + shared
    cpu = sum(summary.cpu_seconds or 0.0 for summary in every)
    children = sum(summary.figures.get("forked", 0) for summary in every)
    events = sum(summary.events_read for summary in every)
    latencies = [summary.reap_latency_ms or {} for summary in every]
    shared_cpu = sum(summary.cpu_seconds or 0.0 for summary in shared)
    machine_cpu = sum(run.machine_cpu_s for run in watched)
    return {
        "with_recorder_fresh": summarise([load for load, _, _ in recorded_runs]),
        "forked_counter": None if None in counters else sum(c for c in counters if c is not None),
        "forks_recorded": sum(recorded),
        "matches_counter": None if None in counters else counters == recorded,
        "without_recorder": summarise([run.load for run in paired[False]]),
        "with_recorder": summarise([run.load for run in watched]),
        "recorder_cpu_s": cpu,
        "events_read": events,
        "cpu_us_per_event": cpu / events * 1e6 if events else None,
        "cpu_us_per_child": cpu / children * 1e6 if children else None,
        "recorder_share_of_machine": shared_cpu / machine_cpu if machine_cpu else None,
        "reap_latency_ms_p99": median(entry.get("p99") for entry in latencies),
        "reap_latency_ms_max": max((entry.get("max") or 0.0 for entry in latencies), default=None),
        "target": target(
            pair_ratios([run.load for run in watched], [run.load for run in paired[False]]),
            MIN_RATIO,
        ),
        **_losses(every),
    }


def _losses(summaries: list[EventSummary]) -> dict[str, Any]:
    lost = [summary.events_lost for summary in summaries]
    return {
        "events_lost": None if None in lost or not lost else sum(n for n in lost if n is not None),
        "overflows": sum(summary.overflows for summary in summaries),
        "sources": summaries[-1].sources if summaries else None,
    }
