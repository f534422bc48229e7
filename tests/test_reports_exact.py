"""The report from an event record (reports/exact.py): the counts, the verdict, the lifetime
line and the cross-checks come from events.csv where the run has one, the samples where
it has none; the figures stop where the harness stopped judging the server."""

from __future__ import annotations

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


def add_events(
    folder: Path, rows: list[ChildRecord], until: float, root: int = SERVER_PID, **summary: Any
) -> EventSummary:
    """events.csv and scenario.json's events (of the tree of ``root``), as the harness
    writes them."""
    with (folder / contract.EVENTS).open("w", newline="", encoding="utf-8") as file:
        file.write(contract.EVENT_HEADER)
        file.writelines(row.csv_line() for row in rows)
    record = ScenarioRecord.from_json(json.loads((folder / contract.SCENARIO).read_text()))
    fields: dict[str, Any] = {
        "root_pid": root,
        "started": record.started,
        "ended": until + 1,
        "until": until,
        "sources": {"forks": "connector", "exits": "connector", "reaps": "pidfd"},
        "events_lost": 0,
        "children": len(rows),
        "root_forks": sum(row.forked_at is not None and row.parent == root for row in rows),
        "root_reaps": sum(row.reaped_by == root for row in rows),
        "figures": lifetimes.summary_figures(rows, until, root),
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
    assert {row["sources"][figure] for figure in contract.EVENT_FIGURES} == {"events"}
    markdown = (run / contract.SUMMARY_MD).read_text()
    assert "zombie lifetime, exit to reap: 100 exited: p50 1 ms" in markdown
    assert "0 not reaped when judged (exact)" in markdown
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
    named = {**record.sources, **dict.fromkeys(contract.EVENT_FIGURES, "events")}
    rewrite(folder / contract.SCENARIO, ScenarioRecord, events=old, sources=named)
    row = row_of(run)
    assert row["zombies_from"] == "samples" and row["zombie_lifetime"] is None
    assert row["verdict"].endswith("(sampled)")
    # The harness named the record; the report says what it fell back on.
    figures = {figure: row["sources"][figure] for figure in contract.EVENT_FIGURES}
    assert figures == {
        "zombies": "sampled",
        "alive": "sampled",
        "children": "server",
        "reaps": "server",
    }


def test_an_interrupted_run_judges_a_child_in_flight_at_the_ctrl_c_by_its_reap(
    tmp_path: Path,
) -> None:
    """Cut short, the record is judged as of the Ctrl-C, but a child between its exit and
    its parent's wait then was in flight: reaped by its parent a moment later, not left. A
    zombie its parent never reaped (the harness, as subreaper, did) stays never reaped."""
    run = write_run(tmp_path / "run", [Spec("reaper-loop", "loop", rps=50, duration=2)])
    folder = run / "reaper-loop"
    record = ScenarioRecord.from_json(json.loads((folder / contract.SCENARIO).read_text()))
    start, until = record.started, record.started + 2.0
    moments = [start + 1 + i * 0.01 for i in range(10)]
    done = [child(7000 + i, at, at + 0.001, at + 0.002) for i, at in enumerate(moments)]
    in_flight = child(7100, until - 0.01, until - 0.0005, until + 0.0005)
    add_events(folder, [*done, in_flight], until)
    rewrite(folder / contract.SCENARIO, ScenarioRecord, interrupted_at=until)
    verdict = row_of(run)["verdict"]
    assert verdict.startswith("interrupted after ")
    assert "; reaps every child: 11 exited, all reaped, the slowest after 1 ms" in verdict

    left = replace(in_flight, reaped_by=1, adopted_by=1, adopted_at=until + 0.0002)
    add_events(folder, [*done, left], until)
    verdict = row_of(run)["verdict"]
    assert "; leaves zombies: 1 of the 11 children that exited never reaped" in verdict


INIT, SERVER, HOLDER = 900, 901, 899


def pid1_run(tmp_path: Path, init: str) -> tuple[Path, float]:
    """The orphan-making server as PID 1 of a namespace (``init`` "none"), or behind an init
    that is: each of its 10 children reaped by it a millisecond after its exit, each
    but the last two leaving an orphan that PID 1 adopts: reaped by the init 2 ms after its
    exit, never by a server that is PID 1 itself (two of those the kernel released as PID 1
    exited)."""
    run = write_run(tmp_path / "run", [Spec("pid1", "own", rps=50, duration=2)])
    folder = run / "pid1"
    record = ScenarioRecord.from_json(json.loads((folder / contract.SCENARIO).read_text()))
    start, until = record.started, record.started + 3.0
    alone = init == "none"
    pid1, server = (SERVER, SERVER) if alone else (INIT, SERVER)
    depth = 1 if alone else 2
    rows: list[ChildRecord] = []
    if not alone:  # the init's one child: the server, there before the record
        rows.append(
            replace(child(server, start, None, None), parent=pid1, origin="pre-existing",
                    forked_at=None, command="server")
        )  # fmt: skip
    for i in range(10):
        forked = start + 1 + i * 0.05
        own = replace(child(8000 + i, forked, forked + 0.001, forked + 0.002), parent=server,
                      depth=depth, reaped_by=server)  # fmt: skip
        reaped = None if alone else forked + 0.012
        orphan = replace(
            child(8100 + i, forked + 0.0005, forked + 0.01, reaped), parent=own.pid,
            depth=depth + 1, adopted_by=pid1, adopted_at=forked + 0.001,
            reaped_by=None if alone else pid1,
        )  # fmt: skip
        if alone and i < 2:  # released by the kernel as PID 1 exited, after the judgement
            orphan = replace(orphan, reaped_at=until + 1, reap_source="pidfd", reaped_by=pid1)
        rows += [own, orphan] if i < 8 else [own]  # the last two leave no orphan
    figures = lifetimes.server_figures(rows, server, until, is_root=alone)
    add_events(folder, rows, until, root=pid1, server=figures)
    namespace = {"init": init, "pid1": pid1, "server": server, "server_nspid": 1 if alone else 2,
                 "holder": HOLDER}  # fmt: skip
    counters = {"accepted": 10, "forked": 10, "reaped": 10, "reaped_at_shutdown": 0}
    rewrite(folder / contract.SCENARIO, ScenarioRecord, pid1=namespace, server_counters=counters)
    return run, start


def test_as_pid1_behind_an_init_the_servers_own_children_and_the_orphans_are_apart(
    tmp_path: Path,
) -> None:
    run, _ = pid1_run(tmp_path, "tini")
    row = row_of(run)
    assert row["verdict"] == (
        "under tini as PID 1 of its PID namespace: reaps every child: 10 exited, all reaped,"
        " the slowest after 1 ms; 8 orphans adopted and reaped by tini (PID 1, host PID 900),"
        " the slowest after 2 ms"
    )
    assert "prefork pool" not in row["verdict"]  # the init's child is the server, no worker
    checks = {check["text"]: check["ok"] for check in row["checks"]}
    for text in (
        "fork events 10 = server forked 10",  # the server's forks, not the init's (none)
        "reaps by the server (events) 10 = reaped 10 + at shutdown 0",  # not the init's 8
        "zombies left (events) 0 = forked 10 - reaped 10 - still running 0",  # not the server
    ):
        assert checks[text] is True, checks


def test_as_pid1_itself_the_orphans_it_was_handed_are_held_by_it(tmp_path: Path) -> None:
    run, _ = pid1_run(tmp_path, "none")
    row = row_of(run)
    assert row["verdict"] == (
        "as PID 1 of its PID namespace, without an init: reaps every child: 10 exited, all"
        " reaped, the slowest after 1 ms; 8 orphans it was handed as PID 1 left as zombies,"
        " held by PID 1, the server itself (host PID 901): an init would reap them"
    )
    # The orphans are PID 1's own children, as ps shows them, not "deeper".
    assert (row["final_zombies"], row["final_descendant_zombies"]) == (8, 0)
    assert row["zombie_holders"] == [
        {"pid": SERVER, "zombies": 8, "cmdline": "", "depth": 0, "nspid": 1}
    ]
    checks = {check["text"]: check["ok"] for check in row["checks"]}
    # What the kernel released in PID 1's name as it exited is no reap the server counted.
    assert checks["reaps by the server while serving (events) 10 = reaped 10"] is True
    assert checks["zombies left (events) 0 = forked 10 - reaped 10 - still running 0"] is True
    assert checks["fork events 10 = server forked 10"] is True


def test_a_zombie_younger_than_the_slowest_reap_at_the_end_is_not_yet_due(tmp_path: Path) -> None:
    """A prefork pool reaps a retired worker a second after its exit, at its once-a-second
    maintenance (Apache's mpm_prefork): judged between two turns, a worker retired 0.2 s
    before is still a zombie. It is not shown left; one older than the slowest reap is."""
    run = write_run(tmp_path / "run", [Spec("prefork", "loop", rps=50, duration=2)])
    folder = run / "prefork"
    record = ScenarioRecord.from_json(json.loads((folder / contract.SCENARIO).read_text()))
    start, until = record.started, record.started + 6.0
    retired = [child(7000 + i, start, start + 1 + i, start + 2 + i) for i in range(4)]
    young = child(7100, start, until - 0.2, until + 0.5)  # reaped at the next turn
    add_events(folder, [*retired, young], until)
    assert row_of(run)["verdict"].startswith(
        "reaps every child: 5 exited, 4 reaped by the end, the slowest after 1 s, half within"
        " 1 s; the other exited 0.2 s before the end, sooner than that: not yet due"
    )
    adopted = replace(young, reaped_by=1, adopted_by=1, adopted_at=until + 0.4)
    add_events(folder, [*retired, adopted], until)  # its parent never reaped it: left
    assert row_of(run)["verdict"].startswith("leaves zombies: 1 of the 5 children")
    old = child(7200, start, until - 1.5, None)  # older than the slowest reap: left
    add_events(folder, [*retired, young, old], until)
    verdict = row_of(run)["verdict"]
    assert verdict.startswith("leaves zombies: 1 of the 6 children that exited never reaped (17%)")
    assert "; the other exited 0.2 s before the end, sooner than that: not yet due" in verdict
