"""Section 6: what one scrape of the whole host costs the exporter with 8,000 processes on
the machine (sleepers and zombies), against a budget of 50 ms.

A scrape is what Prometheus pays at every interval: prometheus_client's whole exposition
(``generate_latest``) of a host-wide :class:`~diagnostics.exporter.ZombieCollector`,
the census of every process, the limits of the parents shown, the text. Starting the
exporter opens a pidfd for each process and reads every zombie once ("start"); a
scrape then reads what changed. Wall time is the figure; CPU time of the scraping
thread is beside it.

It holds thousands of PIDs, so it checks the headroom first and says so when it skips.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from bench.holder import HolderSpec, ZombieHolder
from bench.loadgen import Locust, Wrk
from bench.settings import BenchSettings
from diagnostics.exporter import ZombieCollector
from diagnostics.machine import pid_headroom

BUDGET_MS = 50.0
ZOMBIE_SHARE = 8
"""One process in eight of those made is a zombie (1,000 at 8,000)."""
MAX_ZOMBIES = 1000
SPARE_PIDS = 2000
"""PIDs left to the rest of the machine on top of those held."""
SLEEPER = "/bin/cat"
"""What the live children exec: small, and it ends when the holder's stdin does."""


def processes_now() -> int:
    return sum(name.isdigit() for name in os.listdir("/proc"))


def measure(
    settings: BenchSettings, _generator: Wrk | Locust, _scratch: Path, out: dict[str, Any]
) -> None:
    """Fill ``out`` with the cost of a host scrape at ``settings.exporter_processes``."""
    target = settings.exporter_processes
    out.update(budget_ms=BUDGET_MS, target_processes=target)
    missing = max(0, target - processes_now())
    zombies = min(MAX_ZOMBIES, missing // ZOMBIE_SHARE)
    headroom = pid_headroom()
    if headroom < missing + SPARE_PIDS:
        out["skipped"] = f"only {headroom:,} PIDs free: not making {missing:,} processes"
        return
    spec = HolderSpec(exits=[0] * zombies, alive=missing - zombies, alive_program=SLEEPER)
    with ZombieHolder(spec, ready_timeout=600) as holder:
        started = time.perf_counter()
        collector = ZombieCollector(None)
        start_ms = (time.perf_counter() - started) * 1000.0
        try:
            registry = CollectorRegistry()
            registry.register(collector)
            out.update(processes=processes_now(), zombies_held=len(holder.children.zombies))
            scrapes = [_scrape(registry) for _ in range(settings.sampler_rounds)]
        finally:
            collector.close()
    wall = statistics.median(ms for ms, _ in scrapes)
    out.update(
        start_ms=start_ms,
        ms=wall,
        cpu_ms=statistics.median(cpu for _, cpu in scrapes),
        max_ms=max(ms for ms, _ in scrapes),
        scrapes=len(scrapes),
        within_budget=wall <= BUDGET_MS,
    )


def _scrape(registry: CollectorRegistry) -> tuple[float, float]:
    """(wall ms, CPU ms of this thread) of one whole exposition."""
    wall, cpu = time.perf_counter(), time.thread_time()
    generate_latest(registry)
    return (time.perf_counter() - wall) * 1000.0, (time.thread_time() - cpu) * 1000.0
