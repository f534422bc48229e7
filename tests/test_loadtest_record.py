"""A scenario's record belongs to the thread that runs the scenario.

The sampler calls back from its own thread on every sample, while the scenario's thread
saves the record: a write from the sampler's thread into the record (a new key, a
warning appended) would race the save. The sampler hands its figures over instead
(loadtest/handoff.py); this test runs a whole scenario with every write to the record
traced to its thread (tests/record_guard.py), on the path where the sampler's thread
has the most to say: zombies climbing (the peak) until the cap stops the load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server_helpers import ROOT


@pytest.mark.slow
def test_only_the_scenarios_thread_writes_its_record(tmp_path: Path) -> None:
    report = tmp_path / "writes.json"
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "tests.record_guard", str(report),
         "--no-reaper", "--zombie-cap", "100", "--duration", "5", "--out", str(runs), "--plain"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    writes = json.loads(report.read_text())
    (run,) = runs.iterdir()
    record = json.loads((run / "no-reaper" / "scenario.json").read_text())
    # The sampler's figures did reach the record: the peak it saw, the cap it stopped at.
    assert record["capped"] is True and record["capped_at"] is not None
    assert record["peak_zombies"] >= 100
    assert writes["owner_writes"] > 20  # the guard saw the scenario's own writes
    assert writes["other_writes"] == []
