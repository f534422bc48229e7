"""The exporter's time to the PID limit, proven: a steady leak inside a pids cgroup whose
limit the test sets, the exporter's prediction taken early, and the moment the kernel
refuses the first fork. The limit must be reached within 10% of the predicted time.

Bounded: 300 tasks at 20 a second, 15 s at most, in a cgroup removed afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from diagnostics.exporter import ZombieCollector
from tests.cgroup_helpers import MakeCgroup, make_cgroup, needs_cgroup
from tests.diag_helpers import end_by_stdin

__all__ = ["make_cgroup"]  # the fixture, used by name

LIMIT = 300
RATE = 20.0
WINDOW_S = 3.0
SCRAPE_EVERY_S = 0.25

# Joins the cgroup argv[1], then forks a child that exits at once every 1/argv[2] s on a
# fixed schedule (a late fork does not shift the next) and never reaps, until the first
# fork the kernel refuses (at most argv[3] s); then prints the unix time of the last
# fork that succeeded and of that refusal, and on stdin's end reaps everything.
STEADY_LEAK = r"""
import json, os, sys, time
with open(sys.argv[1], "w") as procs:
    procs.write(str(os.getpid()))
period, deadline = 1 / float(sys.argv[2]), time.monotonic() + float(sys.argv[3])
print("leaking", flush=True)
kids, last, refused, due = [], None, None, time.monotonic()
while time.monotonic() < deadline:
    time.sleep(max(0.0, due - time.monotonic()))
    due += period
    try:
        pid = os.fork()
    except BlockingIOError:
        refused = time.time()
        break
    if pid == 0:
        os._exit(0)
    last = time.time()
    kids.append(pid)
print(json.dumps({"last_fork": last, "refused": refused, "forks": len(kids)}), flush=True)
sys.stdin.buffer.read()
for pid in kids:
    os.waitpid(pid, 0)
"""


def seconds_left(registry: CollectorRegistry, pid: int) -> tuple[float, str] | None:
    """(seconds left, limit kind) of the parent's series, or None while there is none."""
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name, sample.labels.get("pid")) == (
                "reaperlab_parent_pid_limit_seconds_left",
                str(pid),
            ):
                return sample.value, sample.labels["limit"]
    return None


@pytest.mark.slow
@needs_cgroup
def test_the_limit_is_reached_when_the_exporter_said(make_cgroup: MakeCgroup) -> None:
    group = make_cgroup("time-to-limit", LIMIT)
    leak = subprocess.Popen(
        [sys.executable, "-c", STEADY_LEAK, str(group.procs_file), str(RATE), "30"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert leak.stdout is not None and leak.stdout.readline() == "leaking\n"
        started = time.monotonic()
        registry = CollectorRegistry()
        registry.register(ZombieCollector(leak.pid, window=WINDOW_S))
        prediction = None
        while prediction is None:  # a full window of scrapes, then the first prediction
            assert time.monotonic() - started < 10, "no prediction within 10 s"
            scraped_at = time.time()
            found = seconds_left(registry, leak.pid)
            if found is not None and time.monotonic() - started >= WINDOW_S:
                prediction = found
            time.sleep(SCRAPE_EVERY_S)
        predicted, kind = prediction
        outcome = json.loads(leak.stdout.readline())
    finally:
        end_by_stdin(leak)  # type: ignore[arg-type]
    assert kind == "pids.max"
    assert outcome["refused"] is not None, f"the limit was never reached: {outcome}"
    actual = outcome["last_fork"] - scraped_at
    print(
        f"\ntime to limit: predicted {predicted:.2f} s, reached after {actual:.2f} s"
        f" (first refusal after {outcome['refused'] - scraped_at:.2f} s;"
        f" {outcome['forks']} forks; limit {LIMIT}, {RATE:g}/s)"
    )
    assert abs(predicted - actual) <= 0.1 * actual
