"""The harness's event record end to end: our server's own counters against the kernel's
events, and the fallbacks where a source is missing, each as a user would run it.

Like tests/test_loadtest_harness.py, each test runs ``python -m loadtest`` and reads the
run directory it leaves (Locust never enters this process).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from diagnostics import contract
from tests.event_helpers import require_connector
from tests.test_loadtest_harness import harness, read_json, run_dir, run_harness

SHORT = ["--duration", "3", "--zombie-cap", "1000"]
EVENT_CHECKS = ("fork events", "reaps by the server", "zombies left (events)", "no sample of")


def scenarios(run: Path) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in read_json(run / contract.SUMMARY_JSON)["scenarios"]}


@pytest.mark.slow
def test_our_servers_forks_and_reaps_are_its_counters_exactly(tmp_path: Path) -> None:
    require_connector()
    result = run_harness(tmp_path, "--scenarios", "reaper-loop,no-reaper", *SHORT)
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    rows = scenarios(run)
    for name, row in rows.items():
        record = read_json(run / name / contract.SCENARIO)
        events = contract.EventSummary.from_json(record["events"])
        assert events.sampled == {} and events.events_lost == 0, events
        assert events.root_forks == record["server_counters"]["forked"] > 0
        checks = {c["text"].split(" =")[0]: c["ok"] for c in record["cross_checks"]}
        for check in EVENT_CHECKS:
            found = [ok for text, ok in checks.items() if text.startswith(check)]
            assert found == [True], (name, check, record["cross_checks"])
        assert row["zombies_from"] == "events" and (run / name / contract.EVENTS).is_file()
        assert row["zombie_lifetime"]["exited"] == events.root_forks
    forked = rows["no-reaper"]["forked"]
    assert rows["no-reaper"]["verdict"].startswith(
        f"never reaps: all {forked:,} children that exited left as zombies, held by PID"
    )
    assert rows["no-reaper"]["zombie_lifetime"]["never_reaped"] == forked
    assert rows["no-reaper"]["final_zombies"] == forked
    assert rows["reaper-loop"]["verdict"].startswith("reaps every child: ")
    assert rows["reaper-loop"]["zombie_lifetime"]["never_reaped"] == 0
    assert (run / contract.LIFETIMES_PNG).is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sources", "sampled"), [("no-connector", {"forks"}), ("no-pidfds", {"reaps"})]
)
def test_a_missing_source_is_sampled_and_said(tmp_path: Path, sources: str, sampled: set) -> None:
    if sources == "no-pidfds":
        require_connector()
    result = run_harness(tmp_path, "--no-reaper", "--events", sources, *SHORT)
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    row = scenarios(run)["no-reaper"]
    events = row["events"]
    assert set(events["sampled"]) == sampled
    assert row["zombies_from"] == "events"
    assert row["verdict"].endswith(f"(sampled: {', '.join(sorted(sampled))})")
    # A zombie that is never reaped stays to be found by a scan: the count is whole.
    assert row["final_zombies"] == row["forked"] > 0
    assert f"(sampled: {', '.join(sorted(sampled))})" in (run / contract.SUMMARY_MD).read_text()


@pytest.mark.slow
def test_without_an_event_record_the_samples_judge_and_say_so(tmp_path: Path) -> None:
    result = run_harness(tmp_path, "--reaper", "loop", "--events", "off", *SHORT)
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    row = scenarios(run)["reaper-loop"]
    assert not (run / "reaper-loop" / contract.EVENTS).exists()
    assert row["zombies_from"] == "samples" and row["zombie_lifetime"] is None
    assert row["verdict"].endswith("(sampled)")


@pytest.mark.slow
def test_in_a_user_namespace_the_connector_is_ignored_and_the_run_says_so(tmp_path: Path) -> None:
    """As an unprivileged user in a container would run it: the kernel ignores the
    connector's subscription there, the pids cgroup cannot be made, and the run goes on
    with pidfds and scans of /proc, saying which figures are sampled."""
    prefix = ["unshare", "--user", "--map-root-user"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no user namespace: {probe.stderr.strip()}")
    result = subprocess.run(
        [*prefix, *harness(tmp_path, "--no-reaper", *SHORT)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    row = scenarios(run)["no-reaper"]
    assert "initial user and PID namespaces" in row["events"]["sampled"]["forks"]
    assert row["events"]["sources"] == {"forks": "scan", "exits": "pidfd", "reaps": "pidfd"}
    assert row["verdict"].endswith("(sampled: forks)")
    assert row["final_zombies"] == row["forked"] > 0
