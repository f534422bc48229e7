"""The sampler against a load with a fixed rhythm: random sampling times cannot alias.

A process forks one short-lived child on an exact period, and the sampler's mean
interval divides that period. A sampler on a fixed grid would see the same phase of
every period (all children or none); Poisson times see each phase in proportion to
its length, so the share of samples that find a live child estimates the share of
time a child was alive, which the rhythmic process measures itself.
"""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest

from diagnostics.recorder import Recorder
from tests import diag_helpers as h

PERIOD_S = 0.05
CHILD_S = 0.015
PERIODS = 200  # 10 s of rhythm
INTERVAL_S = PERIOD_S  # divides the period: a grid would find a child always or never

# Forks a child every PERIOD_S on absolute deadlines, reaps it at once (the parent
# waits for it), and reports the window it ran in and how long children were alive.
RHYTHM = """
import json, os, sys, time
period, child_s, periods = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
sys.stdin.readline()
alive = 0.0
start_wall, start = time.time(), time.monotonic()
for k in range(1, periods + 1):
    forked = time.monotonic()
    pid = os.fork()
    if pid == 0:
        time.sleep(child_s)
        os._exit(0)
    os.waitpid(pid, 0)
    alive += time.monotonic() - forked
    time.sleep(max(start + k * period - time.monotonic(), 0))
total = time.monotonic() - start
print(json.dumps({"start": start_wall, "end": start_wall + total, "alive_share": alive / total}))
sys.stdout.flush()
sys.stdin.readline()
"""


@pytest.mark.slow
def test_poisson_sampling_sees_transient_children_of_a_rhythmic_load(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    proc = h.spawn(RHYTHM, str(PERIOD_S), str(CHILD_S), str(PERIODS))
    recorder = Recorder(proc.pid, path, interval=INTERVAL_S, rng=random.Random(20261127))
    try:
        recorder.start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        truth = json.loads(proc.stdout.readline())
    finally:
        recorder.stop()
        h.end_by_stdin(proc)
    with path.open(newline="") as file:
        rows = [
            row
            for row in csv.DictReader(file)
            if truth["start"] <= float(row["time"]) <= truth["end"]
        ]
    expected = truth["alive_share"]
    # About one sample per period, at independent phases: a binomial share; five
    # standard errors leave a chance of a false failure below one in a million.
    n = len(rows)
    assert n >= 0.6 * (truth["end"] - truth["start"]) / INTERVAL_S, f"only {n} samples"
    seen = sum(int(row["alive"]) > 0 for row in rows) / n
    bound = 5 * math.sqrt(expected * (1 - expected) / PERIODS)
    assert expected > 0.2, f"the rhythm did not run as meant: children alive {expected:.0%}"
    assert abs(seen - expected) <= bound, (
        f"{seen:.1%} of {n} samples saw a live child; children were alive {expected:.1%}"
        f" of the time (bound ±{bound:.1%})"
    )
    times = [float(row["time"]) for row in rows]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    mean = sum(gaps) / len(gaps)
    spread = math.sqrt(sum((gap - mean) ** 2 for gap in gaps) / len(gaps))
    assert min(gaps) >= 0 and spread > 0.5 * mean, "sampling times should be exponential gaps"
