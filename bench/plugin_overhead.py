"""Benchmark: what ``pytest --child-leaks`` costs, per child started and per test.

    python -m bench.plugin_overhead [--children 1000] [--tests 1000] [--rounds 3] [--json]

A throwaway suite starts ``--children`` children one after the other with os.fork
(+ waitpid) and as many with subprocess.Popen (+ wait), then runs ``--tests`` empty
tests. It runs under three settings, in alternating rounds so that a noisy machine
hits each alike: the plugin not loaded (``-p no:child_leaks``), loaded but off (the
default), and on (``--child-leaks=fail``). The suite's conftest measures, in the
pytest process itself, the wall and CPU time (``time.process_time``: every thread
of the pytest process, none of its children) of each spawn loop and of the empty
tests' whole protocol (setup, call, teardown: where the check runs), and the minor
page faults it took: a figure the load of the machine does not move (a process that
has just forked pays one for each page it first writes, so they count what the
hooks touch). The cost is "on" minus "not loaded", per child and per test, medians
over the rounds.

Every pytest is run in its own session and killed with it on every path out; the
children of the suite are reaped by it, one at a time (never more than one alive).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from diagnostics.commandline import OneLineParser, UsageError, sigterm_as_ctrl_c

SETTINGS = {
    "not loaded": ["-p", "no:child_leaks"],
    "off": [],
    "on": ["--child-leaks=fail"],
}
PHASES = ("fork", "popen", "tests")
RUN_TIMEOUT_S = 600

CONFTEST = """
import json, os, resource, time

import pytest

TIMES = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    phase = item.originalname.split("_")[1]  # test_fork, test_popen, test_tests[N]
    wall, cpu = time.perf_counter(), time.process_time()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    try:
        return (yield)
    finally:
        spent = TIMES.setdefault(phase, [0.0, 0.0, 0])
        spent[0] += time.perf_counter() - wall
        spent[1] += time.process_time() - cpu
        spent[2] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(TIMES, out)
"""

SUITE = """
import os, subprocess

import pytest

CHILDREN = int(os.environ["BENCH_CHILDREN"])


def test_fork():
    for _ in range(CHILDREN):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)


def test_popen():
    for _ in range(CHILDREN):
        subprocess.Popen(["true"]).wait()


@pytest.mark.parametrize("n", range(int(os.environ["BENCH_TESTS"])))
def test_tests(n):
    pass
"""


@dataclass(frozen=True)
class Cost:
    """One phase: microseconds per child (or per test), on minus not loaded; medians."""

    phase: str
    per: int
    wall_us: dict[str, float]
    cpu_us: dict[str, float]
    faults: dict[str, float]
    """Minor page faults of the pytest process, per child (or test)."""

    @property
    def added_cpu_us(self) -> float:
        return self.cpu_us["on"] - self.cpu_us["not loaded"]

    @property
    def added_wall_us(self) -> float:
        return self.wall_us["on"] - self.wall_us["not loaded"]

    @property
    def added_faults(self) -> float:
        return self.faults["on"] - self.faults["not loaded"]


def run_once(folder: Path, setting: str, children: int, tests: int) -> dict[str, list[float]]:
    """One pytest over the suite under one setting: its conftest's times per phase."""
    out = folder / "times.json"
    env = {
        **os.environ,
        "BENCH_OUT": str(out),
        "BENCH_CHILDREN": str(children),
        "BENCH_TESTS": str(tests),
    }
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    proc = subprocess.Popen(
        [*command, *SETTINGS[setting], str(folder)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        last = output.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"pytest ({setting}) exited {proc.returncode}: {last[0]}")
    times: dict[str, list[float]] = json.loads(out.read_text())  # wall s, CPU s, faults
    return times


def measure(children: int, tests: int, rounds: int) -> list[Cost]:
    runs: dict[str, list[dict[str, list[float]]]] = {setting: [] for setting in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="plugin-overhead-") as tmp:
        folder = Path(tmp)
        (folder / "conftest.py").write_text(CONFTEST)
        (folder / "test_spawns.py").write_text(SUITE)
        for _ in range(rounds):
            for setting in SETTINGS:
                runs[setting].append(run_once(folder, setting, children, tests))
    costs = []
    for phase in PHASES:
        per = tests if phase == "tests" else children
        wall = {s: _median(runs[s], phase, 0, per) * 1e6 for s in SETTINGS}
        cpu = {s: _median(runs[s], phase, 1, per) * 1e6 for s in SETTINGS}
        faults = {s: _median(runs[s], phase, 2, per) for s in SETTINGS}
        costs.append(Cost(phase, per, wall, cpu, faults))
    return costs


def _median(runs: list[dict[str, list[float]]], phase: str, which: int, per: int) -> float:
    return statistics.median(run[phase][which] for run in runs) / per


LABELS = {"fork": "os.fork, per child", "popen": "subprocess.Popen, per child", "tests": "per test"}


def render(costs: Sequence[Cost]) -> str:
    head = "".join(f"{setting:>20}" for setting in SETTINGS)
    lines = [f"{'CPU us (wall us) faults':<28}{head}{'added by on':>22}"]
    for cost in costs:
        cells = "".join(
            f"{cost.cpu_us[s]:>8.1f} ({cost.wall_us[s]:>5.0f}) {cost.faults[s]:>4.0f}"
            for s in SETTINGS
        )
        added = f"{cost.added_cpu_us:+.1f} ({cost.added_wall_us:+.0f}) {cost.added_faults:+.0f}"
        lines.append(f"{LABELS[cost.phase]:<28}{cells}{added:>22}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m bench.plugin_overhead")
    parser.add_argument("--children", type=int, default=1000, help="children per way")
    parser.add_argument("--tests", type=int, default=1000, help="empty tests")
    parser.add_argument("--rounds", type=int, default=3, help="runs per setting")
    parser.add_argument("--json", action="store_true")
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    if min(args.children, args.tests, args.rounds) < 1:
        print("bench: --children, --tests and --rounds must be at least 1", file=sys.stderr)
        return 2
    sigterm_as_ctrl_c()
    try:
        costs = measure(args.children, args.tests, args.rounds)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    if args.json:
        rows = [
            asdict(c) | {"added_cpu_us": c.added_cpu_us, "added_faults": c.added_faults}
            for c in costs
        ]
        print(json.dumps(rows, indent=2))
    else:
        print(render(costs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
