"""Benchmark: CPU cost of one Sampler.sample() against psutil children() + status(),
side by side (alternating, same target, same moment) at 0, 500 and 2000 zombies.

    python -m bench.sampler_levels [--rounds 20] [--zombies 0 500 2000] [--json]

Cost is the CPU time (user + system, time.thread_time) of the measuring thread, so
other load on the machine does not inflate it. "ours" is the steady state (zombies
already cached); "ours first" is the first, cold sample that reads every zombie once.
Exit status 1 when the steady cost at the largest level exceeds --budget-ms.

This makes zombies on purpose, so it cleans up on every exit path: each level's
holder process is released (it reaps its zombies) or killed by PID, and the bench
is a child subreaper, so zombies orphaned by a killed holder come to it and are
reaped here.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import psutil

from bench.holder import HolderSpec, ZombieHolder
from diagnostics.commandline import OneLineParser, UsageError, sigterm_as_ctrl_c
from diagnostics.machine import pid_headroom
from diagnostics.sampler import Sampler
from diagnostics.subreaper import become_subreaper
from loadtest.processes import reap_orphans

MAX_ZOMBIES = 2500  # never hold more than this many PIDs hostage
BUDGET_MS = 3.0  # steady cost allowed per sample at the largest level


@dataclass(slots=True)
class Row:
    """One level of the table (milliseconds of CPU per sample, medians)."""

    zombies: int
    ours_ms: float
    ours_first_ms: float
    psutil_ms: float
    ratio: float


def psutil_cost_ms(pid: int) -> float:
    """CPU ms of the obvious way: children() and each child's status()."""
    start = time.thread_time()
    for child in psutil.Process(pid).children():
        try:
            child.status()
        except psutil.NoSuchProcess:
            continue
    return (time.thread_time() - start) * 1000.0


def measure(zombies: int, rounds: int) -> Row:
    """Hold ``zombies`` zombies in a helper process and time both ways on it."""
    with ZombieHolder(HolderSpec.zombies(zombies)) as holder:
        sampler = Sampler(holder.pid)
        first = sampler.sample()
        if first.zombies != zombies:
            raise RuntimeError(f"sampler saw {first.zombies} zombies, expected {zombies}")
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(sampler.sample().sample_cost_ms)
            theirs.append(psutil_cost_ms(holder.pid))
    ours_ms, psutil_ms = statistics.median(ours), statistics.median(theirs)
    return Row(zombies, ours_ms, first.sample_cost_ms, psutil_ms, psutil_ms / ours_ms)


def render(rows: Sequence[Row]) -> str:
    lines = [
        f"{'zombies':>8} {'ours ms':>9} {'ours first ms':>14} {'psutil ms':>10} {'ratio':>8}",
    ]
    for r in rows:
        lines.append(
            f"{r.zombies:>8,} {r.ours_ms:>9.3f} {r.ours_first_ms:>14.3f}"
            f" {r.psutil_ms:>10.3f} {r.ratio:>7.0f}x"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m bench.sampler_levels")
    parser.add_argument("--rounds", type=int, default=20, help="samples per way and level")
    parser.add_argument("--zombies", type=int, nargs="+", default=[0, 500, 2000])
    parser.add_argument("--budget-ms", type=float, default=BUDGET_MS)
    parser.add_argument("--json", action="store_true")
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    if args.rounds < 1 or any(not 0 <= n <= MAX_ZOMBIES for n in args.zombies):
        print(f"bench: --rounds >= 1 and 0 <= --zombies <= {MAX_ZOMBIES}", file=sys.stderr)
        return 2
    if pid_headroom() < max(args.zombies) + 500:
        print(f"bench: only {pid_headroom()} PIDs free; not making zombies", file=sys.stderr)
        return 2
    sigterm_as_ctrl_c()
    become_subreaper()
    rows = []
    try:
        for level in args.zombies:
            rows.append(measure(level, args.rounds))
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        reap_orphans()
    print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else render(rows))
    top = max(rows, key=lambda r: r.zombies)
    if top.ours_ms > args.budget_ms:
        print(f"bench: {top.ours_ms:.3f} ms at {top.zombies} zombies > budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
