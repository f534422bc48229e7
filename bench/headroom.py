"""Section 4: is the load generator the bottleneck? Locust as the harness runs it, plain
Locust, and (when installed) wrk, alternating against one server of ours.

Both Locust runs use the project's locustfile with the same users, as fast as they
can. The harness's extra options (CSV history flushed every second, final stats
rewritten) should cost nothing. Locust's own CPU says how close it is to its one
core; wrk, which needs far less CPU per request, shows what the server could do.
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.contenders import OURS
from bench.loadgen import LoadResult, Locust, LocustRun, Wrk, run_locust, watch_locust
from bench.rounds import median, pair_ratios, paired_ratio, rotated, summarise, target
from bench.settings import BenchSettings
from loadtest.load import HOOKS, LOCUSTFILE, LoadShape, start_timeout
from loadtest.processes import ManagedProcess

LOCUST_WAYS = ("harness", "plain")
MIN_RATIO = 0.95
"""Harness / plain Locust at least this (issue 21): the harness's Locust options and its
watching must not slow the load it makes."""


def plain_locust(url: str, shape: LoadShape, folder: Path) -> ManagedProcess:
    """``locust`` as a user would type it, with only --csv added to read its totals.

    The hooks file rides along only to write the final CSVs (Locust's own writer
    misses the last second, and flushes every 5 s); it adds no work per request.
    """
    command = [
        sys.executable, "-m", "locust", "-f", f"{HOOKS},{LOCUSTFILE}", "--headless",
        "--users", str(shape.users), "--spawn-rate", str(shape.users),
        "--run-time", f"{shape.duration}s", "--host", url,
        "--csv", str(folder / "locust"),
    ]  # fmt: skip
    return ManagedProcess("locust", command, folder / "locust.log", cwd=folder)


def measure(
    settings: BenchSettings, generator: Wrk | Locust, scratch: Path, out: dict[str, Any]
) -> None:
    """Alternate the ways against one server; fill ``out`` as runs end."""
    shape = LoadShape(users=settings.connections, rate=0.0, duration=settings.seconds)
    ways = (*LOCUST_WAYS, "wrk") if isinstance(generator, Wrk) else LOCUST_WAYS
    locust_runs: dict[str, list[LocustRun]] = {way: [] for way in LOCUST_WAYS}
    wrk_runs: list[LoadResult] = []
    with ExitStack() as stack:
        server = OURS.start(scratch / "headroom")
        stack.callback(server.process.stop)
        for round_index in range(settings.rounds):
            for way in rotated(ways, round_index):
                if way == "wrk":
                    wrk_runs.append(generator.run(server.url, settings.seconds, scratch))
                else:
                    folder = Path(tempfile.mkdtemp(prefix=f"{way}-", dir=scratch))
                    locust_runs[way].append(_run_locust(way, server.url, shape, folder))
                out.update(_summary(locust_runs, wrk_runs, shape))


def _run_locust(way: str, url: str, shape: LoadShape, folder: Path) -> LocustRun:
    if way == "harness":
        return run_locust(url, shape, folder)
    process = plain_locust(url, shape, folder)
    return watch_locust(process, folder, shape.duration, start_timeout(shape))


def _summary(
    locust_runs: dict[str, list[LocustRun]], wrk_runs: list[LoadResult], shape: LoadShape
) -> dict[str, Any]:
    results = {way: [run.result for run in runs] for way, runs in locust_runs.items()}
    summary: dict[str, Any] = {"users": shape.users}
    for way, runs in locust_runs.items():
        summary[way] = {
            **summarise(results[way]),
            "locust_cpu_cores": median(run.cpu_cores for run in runs),
            "client_bound": any(run.client_bound for run in runs),
        }
    summary["harness_vs_plain"] = target(
        pair_ratios(results["harness"], results["plain"]), MIN_RATIO
    )
    if wrk_runs:
        summary["wrk"] = summarise(wrk_runs)
        summary["harness_vs_wrk"] = paired_ratio(results["harness"], wrk_runs)
    return summary
