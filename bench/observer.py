"""Section 3: does watching the server slow it down? Ours with the sampler at 20 Hz vs none.

The Recorder runs in this process, as it does in the harness, and competes for the
same CPUs as the server and the load generator: that is the effect to measure.
"""

from __future__ import annotations

import statistics
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.contenders import OURS
from bench.loadgen import LoadResult, Locust, Wrk
from bench.rounds import pair_ratios, rotated, summarise, target
from bench.settings import BenchSettings
from diagnostics.defaults import INTERVAL
from diagnostics.recorder import Recorder

MIN_RATIO = 0.97
PAIRS_PER_ROUND = 2
"""Runs (without, with) twice per round. The effect looked for, a few percent, is
smaller than the swings between two runs on a 2-CPU machine: one bench with five
pairs gave per-pair ratios from 0.90 to 1.16 (median 0.96), two with eight pairs
gave medians of 1.00 and 0.99."""


def measure(
    settings: BenchSettings, generator: Wrk | Locust, scratch: Path, out: dict[str, Any]
) -> None:
    """Alternate rounds with and without the sampler on one server; fill ``out`` as they end."""
    folder = scratch / "observer"
    plain: list[LoadResult] = []
    watched: list[LoadResult] = []
    costs: list[float] = []
    with ExitStack() as stack:
        server = OURS.start(folder)
        stack.callback(server.process.stop)
        for round_index in range(settings.rounds * PAIRS_PER_ROUND):
            for sampled in rotated((False, True), round_index):
                if sampled:
                    csv_path = folder / f"samples-{round_index}.csv"
                    with Recorder(
                        server.pid,
                        csv_path,
                        INTERVAL.default,  # the harness's
                        on_sample=lambda s: costs.append(s.sample_cost_ms),
                    ):
                        watched.append(generator.run(server.url, settings.seconds, scratch))
                else:
                    plain.append(generator.run(server.url, settings.seconds, scratch))
                out.update(_summary(plain, watched, costs, settings))


def _summary(
    plain: list[LoadResult], watched: list[LoadResult], costs: list[float], settings: BenchSettings
) -> dict[str, Any]:
    without, with_sampler = summarise(plain), summarise(watched)
    return {
        "interval_s": INTERVAL.default,
        "without_sampler": without,
        "with_sampler": with_sampler,
        "samples": len(costs),
        "samples_per_s": len(costs) / (len(watched) * settings.seconds) if watched else None,
        "sample_cost_ms": statistics.median(costs) if costs else None,
        "target": target(pair_ratios(watched, plain), MIN_RATIO),
    }
