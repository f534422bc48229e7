"""The report from an event record (reports/exact.py): the counts, the verdict, the lifetime
line and the cross-checks come from events.csv where the run has one, the samples where
it has none; the figures stop where the harness stopped judging the server."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diagnostics import contract, lifetimes
from diagnostics.contract import ChildRecord, EventSummary, ScenarioRecord
from reports import exact
from reports.build import build_report
from reports.rundir import load_run
from tests.reports_fixtures import Spec, rewrite, write_run

SERVER_PID = 4242  # the fixtures' server_pid


def child(pid: int, forked: float, exited: float | None, reaped: float | None) -> ChildRecord:
    """A child of the server, forked, exited and reaped at those times (None: did not)."""
    return ChildRecord(
        pid=pid, started=forked, parent=SERVER_PID, depth=1, command="server", origin="forked",
        seen_at=forked, forked_at=forked, exited_at=exited,
        exit_source="" if exited is None else "connector", exit_code=None if exited is None else 0,
        exit_signal=None, reaped_at=reaped, reap_source="" if reaped is None else "pidfd",
        reaped_by=None if reaped is None else SERVER_PID, adopted_by=None,
    )  # fmt: skip


def add_events(folder: Path, rows: list[ChildRecord], until: float, **summary: Any) -> EventSummary:
    """events.csv and scenario.json's events, as the harness writes them."""
    with (folder / contract.EVENTS).open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(contract.EVENT_COLUMNS)
        writer.writerows(row.csv_row() for row in rows)
    record = ScenarioRecord.from_json(json.loads((folder / contract.SCENARIO).read_text()))
    fields: dict[str, Any] = {
        "root_pid": SERVER_PID,
        "started": record.started,
        "ended": until + 1,
        "until": until,
        "sources": {"forks": "connector", "exits": "connector", "reaps": "pidfd"},
        "events_lost": 0,
        "children": len(rows),
        "root_forks": sum(row.forked_at is not None for row in rows),
        "root_reaps": sum(row.reaped_by == SERVER_PID for row in rows),
        "figures": lifetimes.summary_figures(rows, until),
        **summary,
    }
    events = EventSummary(**fields)
    rewrite(folder / contract.SCENARIO, ScenarioRecord, events=events.to_json())
    return events


def reaper_run(tmp_path: Path) -> tuple[Path, float]:
    """A reaper-loop run whose record has 100 children each reaped 1 ms after its exit,
    a worker there before the load and a zombie its launcher left."""
    run = write_run(tmp_path / "run", [Spec("reaper-loop", "loop", rps=50, duration=2)])
    folder = run / "reaper-loop"
    record = ScenarioRecord.from_json(json.loads((folder / contract.SCENARIO).read_text()))
    start = record.started
    rows = [
        child(5000 + i, start + 0.6 + i * 0.01, start + 0.602 + i * 0.01, start + 0.603 + i * 0.01)
        for i in range(100)
    ]
    worker = replace(child(4300, start, None, None), origin="pre-existing", forked_at=None)
    zombie = replace(
        child(4301, start, None, None), origin="pre-existing", forked_at=None,
        exit_source="before-seen", exit_code=0,
    )  # fmt: skip
    until = start + 3.0
    add_events(folder, [*rows, worker, zombie], until, root_forks=100, root_reaps=100)
    counters = {"accepted": 100, "forked": 100, "reaped": 100, "reaped_at_shutdown": 0}
    rewrite(folder / contract.SCENARIO, ScenarioRecord, server_counters=counters)
    (folder / contract.SERVER).write_text(json.dumps(counters))
    return run, start


def row_of(run: Path) -> dict[str, Any]:
    report = build_report(run)
    (row,) = report.summary["scenarios"]
    return row


def test_the_counts_verdict_and_lifetime_line_come_from_the_events(tmp_path: Path) -> None:
    run, _ = reaper_run(tmp_path)
    row = row_of(run)
    assert row["zombies_from"] == "events"
    assert (row["peak_zombies"], row["final_zombies"]) == (2, 1)  # the launcher's, and a child's
    life = row["zombie_lifetime"]
    assert (life["exited"], life["reaped"], life["measured"], life["never_reaped"]) == (
        100,
        100,
        100,
        0,
    )
    assert life["max_ms"] == pytest.approx(1.0, abs=0.01)
    before = {"count": 1, "left": 1, "holders": [{"pid": SERVER_PID, "zombies": 1}]}
    assert row["zombies_before"] == before
    assert row["pool"]["before"] == 1 and row["pool"]["kept"] == 1
    assert row["verdict"] == (
        "reaps every child: 100 exited, all reaped, the slowest after 1 ms; 1 zombie there"
        " before the load (not its doing), still there, held by PID 4242, the process the"
        " harness started; prefork pool: the 1 worker there before the load all kept"
    )
    checks = {check["text"]: check["ok"] for check in row["checks"]}
    assert checks["fork events 100 = server forked 100"] is True
    assert checks["reaps by the server (events) 100 = reaped 100 + at shutdown 0"] is True
    markdown = (run / contract.SUMMARY_MD).read_text()
    assert "zombie lifetime, exit to reap: 100 exited: p50 1 ms" in markdown
    assert "0 never reaped (exact)" in markdown
    assert (run / contract.LIFETIMES_PNG).is_file()
    assert contract.EVENTS in row["files"]


def test_the_step_series_is_exact_and_stops_where_the_judgement_did(tmp_path: Path) -> None:
    run, start = reaper_run(tmp_path)
    scenario = load_run(run).scenarios[0]
    series = exact.series(scenario)
    assert series is not None
    first = start + 0.602 - scenario.start  # the first child's exit
    index = int(np.flatnonzero(np.isclose(series.t, first, atol=1e-6))[0])
    assert (series.live[index], series.zombies[index]) == (1, 2)  # the worker; its zombie + one
    assert series.zombies[index + 1] == 1  # reaped a millisecond later
    assert series.t[-1] == pytest.approx(3.0)  # until


def test_a_count_that_disagrees_with_the_server_fails_its_check(tmp_path: Path) -> None:
    run, _ = reaper_run(tmp_path)
    folder = run / "reaper-loop"
    record = ScenarioRecord.from_json(json.loads((folder / contract.SCENARIO).read_text()))
    assert record.events is not None
    events = {
        **record.events,
        "root_forks": 99,
        "samples_check": {"samples": 50, "above_events": 2, "first": ["the sample at 1.0 ..."]},
    }
    rewrite(folder / contract.SCENARIO, ScenarioRecord, events=events)
    row = row_of(run)
    failed = [check["text"] for check in row["checks"] if not check["ok"]]
    assert (
        "fork events 99 != server forked 100: the record or the server's counter missed some"
        in (failed)
    )
    assert "2 of 50 samples show more zombies than the events: the sample at 1.0 ..." in failed
    assert set(failed) <= set(row["warnings"])


def test_a_zombie_reaped_after_the_judgement_was_never_reaped_then(tmp_path: Path) -> None:
    """The harness judges until it asks the server to stop: a reap by the shutdown, or by
    the harness as subreaper, after that is not the server's reaping."""
    run = write_run(tmp_path / "run", [Spec("no-reaper", "none", rps=50, duration=2)])
    folder = run / "no-reaper"
    record = ScenarioRecord.from_json(json.loads((folder / contract.SCENARIO).read_text()))
    start, until = record.started, record.started + 3.0
    rows = [
        child(6000 + i, start + 1 + i * 0.01, start + 1.002 + i * 0.01, None) for i in range(10)
    ]
    rows = [replace(row, reaped_at=until + 0.5, reap_source="pidfd", reaped_by=1,
                    adopted_by=1, adopted_at=until + 0.4) for row in rows]  # fmt: skip
    late = child(6100, start + 2.9, start + 3.2, start + 3.3)  # exited after the judgement
    add_events(folder, [*rows, late], until)
    row = row_of(run)
    assert row["verdict"] == (
        "never reaps: all 10 children that exited left as zombies, held by PID 4242, the"
        " process the harness started"
    )
    assert row["zombie_lifetime"]["never_reaped"] == 10
    assert (row["final_zombies"], row["zombies_from"]) == (10, "events")


def test_a_record_of_an_older_writer_leaves_the_samples_to_judge(tmp_path: Path) -> None:
    run, _ = reaper_run(tmp_path)
    folder = run / "reaper-loop"
    record = ScenarioRecord.from_json(json.loads((folder / contract.SCENARIO).read_text()))
    assert record.events is not None
    old = {key: value for key, value in record.events.items() if key != "root_forks"}
    rewrite(folder / contract.SCENARIO, ScenarioRecord, events=old)
    row = row_of(run)
    assert row["zombies_from"] == "samples" and row["zombie_lifetime"] is None
    assert row["verdict"].endswith("(sampled)")
