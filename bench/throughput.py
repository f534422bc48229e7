"""Section 1: ours against ForkingTCPServer and the minimal server, plus the fork ceiling."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil

from bench.contenders import CONTENDERS, FORKING_TCP, MINIMAL, OURS, Contender
from bench.forkrate import ForkRate, fork_rate
from bench.loadgen import LoadResult, Locust, Wrk
from bench.rounds import median, pair_ratios, rotated, summarise, target
from bench.settings import BenchSettings
from loadtest.target import Target

VS_FORKING_TCP = 1.2
"""Ours must serve at least 1.2x the requests/s of socketserver.ForkingTCPServer..."""
VS_MINIMAL = 1.0
"""...and no fewer than the minimal server, despite parsing and answering real HTTP."""
CEILING = "fork_ceiling"


def measure(
    settings: BenchSettings, generator: Wrk | Locust, scratch: Path, out: dict[str, Any]
) -> None:
    """Fill ``out`` as rounds complete, so an interrupted run still has what it measured."""
    runs: dict[str, list[LoadResult]] = {c.key: [] for c in CONTENDERS}
    rss: dict[str, int | None] = {c.key: None for c in CONTENDERS}
    serial: list[ForkRate] = []
    ceilings: list[ForkRate] = []
    with ExitStack() as stack:
        targets: dict[str, Target] = {}
        for contender in CONTENDERS:
            targets[contender.key] = contender.start(scratch / "throughput")
            stack.callback(targets[contender.key].process.stop)
        items: list[Contender | str] = [*CONTENDERS, CEILING]
        for round_index in range(settings.rounds):
            for item in rotated(items, round_index):
                if isinstance(item, str):
                    serial.append(fork_rate(settings.seconds, in_flight=1))
                    ceilings.append(fork_rate(settings.seconds, settings.connections))
                else:
                    server = targets[item.key]
                    runs[item.key].append(generator.run(server.url, settings.seconds, scratch))
                    rss[item.key] = _rss(server.pid)
                out.update(_summary(runs, rss, serial, ceilings))


def _summary(
    runs: dict[str, list[LoadResult]],
    rss: dict[str, int | None],
    serial: list[ForkRate],
    ceilings: list[ForkRate],
) -> dict[str, Any]:
    contenders = {}
    for contender in CONTENDERS:
        contenders[contender.key] = {
            "label": contender.label,
            **summarise(runs[contender.key]),
            "parent_rss_bytes": rss[contender.key],
        }
    ours = runs[OURS.key]
    return {
        "contenders": contenders,
        "fork_ceiling": {
            "rate_per_s": median(c.rate_per_s for c in ceilings),
            "in_flight": ceilings[0].in_flight if ceilings else None,
            "serial_rate_per_s": median(c.rate_per_s for c in serial),
            "rss_bytes": median(c.rss_bytes for c in ceilings),
            "rounds": [c.rate_per_s for c in ceilings],
        },
        "targets": {
            "ours_vs_forking_tcp_server": target(
                pair_ratios(ours, runs[FORKING_TCP.key]), VS_FORKING_TCP
            ),
            "ours_vs_minimal": target(pair_ratios(ours, runs[MINIMAL.key]), VS_MINIMAL),
        },
    }


def _rss(pid: int) -> int | None:
    """The server parent's resident memory (its children share it copy-on-write)."""
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None
