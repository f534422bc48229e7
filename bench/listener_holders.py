"""Benchmark: what one ``ListenerHolders.count`` costs (diagnostics.inherited), the count of
children that hold their parent's listening socket, at 50 and 500 children, and what it
adds to one sample of the sampler (samples.csv's ``listener_holders``).

    python -m bench.listener_holders [--children 50 500] [--rounds 20] [--json]

At each level a helper parent listens and forks that many children, once with every
child keeping the listening socket and once with every child having closed it (one
readlink per child either way). The count's cost is the CPU time of the measuring
thread (``time.thread_time``); a sample's, with the count and without, the CPU time of
this process (``time.process_time``, the process CPU clock), as the harness's sampler
pays it. Each is the median of ``--rounds`` calls, so other load on the machine
inflates it less than wall time would. Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from bench.holder import end_by_stdin
from diagnostics.commandline import OneLineParser, UsageError, sigterm_as_ctrl_c
from diagnostics.inherited import ListenerHolders
from diagnostics.machine import pid_headroom
from diagnostics.proctable import task_children
from diagnostics.sampler import Sampler

MAX_CHILDREN = 1000
SPARE_PIDS = 500

# Listens, forks argv[1] children that keep the socket ("keep") or close it, prints
# "ready" once all are forked; stdin EOF ends them all.
_PARENT = r"""
import os, signal, socket, sys

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
children = []
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        if sys.argv[2] != "keep":
            listener.close()
        signal.pause()
    children.append(pid)
print("ready", flush=True)
sys.stdin.buffer.read()
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"""


@dataclass(slots=True)
class Row:
    """One level: milliseconds of CPU per count, and per sample with the count and without
    it, every child holding the socket (medians)."""

    children: int
    holding_ms: float
    closed_ms: float
    sample_ms: float
    sample_without_ms: float


@contextmanager
def family(children: int, keep: bool) -> Iterator[tuple[int, list[int]]]:
    """(parent PID, children PIDs) of a helper with ``children`` children."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(children), "keep" if keep else "close"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline() != b"ready\n":
            raise RuntimeError("the helper parent did not start its children")
        yield proc.pid, sorted(task_children(proc.pid))
    finally:
        end_by_stdin(proc)


def cost_ms(children: int, keep: bool, rounds: int) -> float:
    with family(children, keep) as (parent, pids):
        holders = ListenerHolders(parent)
        expected = children if keep else 0
        costs = []
        for _ in range(rounds):
            start = time.thread_time()
            counted = holders.count(pids)
            costs.append((time.thread_time() - start) * 1000.0)
            if counted != expected:
                raise RuntimeError(f"counted {counted} holders of {children}, expected {expected}")
    return statistics.median(costs)


def sample_costs_ms(children: int, rounds: int) -> tuple[float, float]:
    """(CPU ms per sample with the holders count, without it), every child holding."""
    with family(children, keep=True) as (parent, _pids):
        counting = Sampler(parent, count_listener_holders=True)
        plain = Sampler(parent)
        costs: dict[Sampler, list[float]] = {counting: [], plain: []}
        for _ in range(rounds):
            for sampler, taken in costs.items():  # alternating, so both meet the same load
                start = time.process_time()
                sample = sampler.sample()
                taken.append((time.process_time() - start) * 1000.0)
                if sampler is counting and sample.listener_holders != children:
                    raise RuntimeError(f"the sampler counted {sample.listener_holders} holders")
    return statistics.median(costs[counting]), statistics.median(costs[plain])


def measure(children: int, rounds: int) -> Row:
    return Row(
        children,
        cost_ms(children, True, rounds),
        cost_ms(children, False, rounds),
        *sample_costs_ms(children, rounds),
    )


def render(rows: Sequence[Row]) -> str:
    lines = [
        f"{'children':>9} {'all hold ms':>12} {'none hold ms':>13}"
        f" {'sample ms':>10} {'without ms':>11}"
    ]
    lines += [
        f"{r.children:>9,} {r.holding_ms:>12.3f} {r.closed_ms:>13.3f}"
        f" {r.sample_ms:>10.3f} {r.sample_without_ms:>11.3f}"
        for r in rows
    ]
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags, checked; UsageError with a one-line reason otherwise."""
    parser = OneLineParser(prog="python -m bench.listener_holders")
    parser.add_argument("--children", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--rounds", type=int, default=20, help="counts per level and case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.rounds < 1 or any(not 1 <= n <= MAX_CHILDREN for n in args.children):
        raise UsageError(f"--rounds >= 1 and 1 <= --children <= {MAX_CHILDREN}")
    if pid_headroom() < max(args.children) + SPARE_PIDS:
        raise UsageError(f"only {pid_headroom()} PIDs free")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
    except UsageError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    sigterm_as_ctrl_c()
    try:
        rows = [measure(n, args.rounds) for n in args.children]
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
