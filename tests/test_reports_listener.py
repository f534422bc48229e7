"""The listening socket a child kept, as reports tell it: the section, its line, its figure,
the dashboard's row, and records that are partial or from anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from diagnostics.contract import ListenerAftermath, ScenarioRecord
from reports import listener
from reports.build import ReportResult, build_report
from reports.plots import _listener_panel, _panels
from reports.rundir import Samples, Scenario, load_run
from tests.reports_fixtures import RUN_STARTED, Spec, png_size, rewrite, write_run

KILLED = RUN_STARTED + 30.0


def shown(**changes: object) -> ListenerAftermath:
    """What loadtest/aftermath.py records for a server whose 3 children keep the socket."""
    looks = [KILLED - 0.03 + 0.02 * i for i in range(30)]
    held = [3 if at < KILLED + 0.3 else 2 if at < KILLED + 0.4 else 1 for at in looks]
    timeline = [[at, h, 1] for at, h in zip(looks, held, strict=True)]
    timeline.append([KILLED + 0.62, 0, 0])
    record = ListenerAftermath(
        signal="SIGKILL",
        parent_pid=4242,
        address="127.0.0.1:8888",
        counted_from="the server's cgroup.procs",
        held=3,
        holders_at_stop=3,
        stopped_at=KILLED,
        parent_gone_at=KILLED + 0.001,
        listening_after_stop=True,
        bind_while_held="EADDRINUSE",
        bind_tried_at=KILLED + 0.01,
        probes=3,
        probed_at=KILLED + 0.011,
        queued=3,
        answered_while_held=0,
        probe_fates={"reset": 3},
        held_answered=3,
        released_at=[KILLED + 0.05, KILLED + 0.15, KILLED + 0.25],
        last_holder_gone_at=KILLED + 0.6,
        port_free_at=KILLED + 0.601,
        bind_after="ok",
        timeline=timeline,
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def killed_run(tmp_path: Path, aftermath: dict[str, object]) -> ReportResult:
    """A run whose listener-leak ended with the parent killed: no server.json."""
    run_dir = write_run(tmp_path / "run", [Spec("listener-leak", "loop", duration=3)])
    folder = run_dir / "listener-leak"
    rewrite(
        folder / "scenario.json",
        ScenarioRecord,
        child_keeps_listener=True,
        server_counters=None,
        listener_aftermath=aftermath,
    )
    (folder / "server.json").unlink()
    return build_report(run_dir)


def test_the_section_its_line_and_its_figure(tmp_path: Path) -> None:
    result = killed_run(tmp_path, shown().to_json())
    [row] = result.summary["scenarios"]
    section = row["listener_aftermath"]
    assert section["figure"] == "listener-leak.port.png"
    figure = result.run_dir / section["figure"]
    assert figure in result.written and png_size(figure)[0] >= 800
    assert section["headline"] == (
        "parent killed alone (SIGKILL): port 127.0.0.1:8888 stayed in LISTEN 0.60 s (looked at"
        " every 20 ms), held by 3 children; bind EADDRINUSE; 3 connections made then: accept"
        " queue 3, 0 answered, then 3 reset; once the last child exited, bind ok"
    )
    assert row["missing"] == [] and row["warnings"] == []  # a killed server prints no counters
    page = (result.run_dir / "index.html").read_text()
    assert listener.LESSON in page and 'src="listener-leak.port.png"' in page
    assert "Address already in use" in page and "close the listening socket in the child" in page
    assert f"**listener-leak**: {section['headline']}" in result.markdown
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["scenarios"][0]["listener_aftermath"]["held_for_ms"] == section["held_for_ms"]


def test_a_step_that_could_not_be_done_is_said_so(tmp_path: Path) -> None:
    failed = shown(
        errors=["the 3 held requests' children had not all started within 5 s"],
        holders_at_stop=None,
        stopped_at=None,
        parent_gone_at=None,
        timeline=[],
    )
    result = killed_run(tmp_path, failed.to_json())
    [row] = result.summary["scenarios"]
    section = row["listener_aftermath"]
    assert section["headline"].startswith("parent killed alone (SIGKILL) not done: the 3 held")
    assert section["figure"] is None
    assert not (result.run_dir / "listener-leak.port.png").exists()


def test_a_port_that_closed_with_its_parent() -> None:
    closed = shown(listening_after_stop=False, holders_at_stop=0, bind_while_held="ok")
    assert listener.headline(closed) == (
        "parent killed alone (SIGKILL): the port closed with it, no child held the listening socket"
    )
    assert "The port closed with the parent" in " ".join(listener.paragraphs(closed))


def test_values_of_the_wrong_type_are_notes_not_figures(tmp_path: Path) -> None:
    mangled = {**shown().to_json(), "queued": "three", "timeline": "none"}
    result = killed_run(tmp_path, mangled)
    [row] = result.summary["scenarios"]
    section = row["listener_aftermath"]
    assert section["queued"] is None and section["figure"] is None
    assert any(p.startswith("Note: listener_aftermath: queued") for p in section["paragraphs"])


def test_the_dashboard_shows_who_holds_the_listening_socket(tmp_path: Path) -> None:
    result = killed_run(tmp_path, shown().to_json())
    run = load_run(result.run_dir)
    [leak] = run.scenarios
    assert _listener_panel in _panels(run, leak)
    t = np.arange(0.0, 1.0, 0.1)
    # Our correct server: a child caught between fork() and its close is not a finding.
    blip = np.where(t == 0.5, 1.0, 0.0)
    ours = Scenario(
        "reaper-loop",
        None,
        (),
        record=ScenarioRecord(name="reaper-loop", strategy="loop", started=0.0),
        samples=Samples(t, {"alive": np.ones_like(t), "listener_holders": blip}),
    )
    assert _listener_panel not in _panels(run, ours)
    pool = Scenario(
        "prefork",
        None,
        (),
        samples=Samples(t, {"alive": np.full_like(t, 4), "listener_holders": np.full_like(t, 4)}),
    )
    assert _listener_panel in _panels(run, pool)  # a server not ours: workers share it
    closed = Scenario("closes", None, (), samples=Samples(t, {"listener_holders": 0 * t}))
    assert _listener_panel not in _panels(run, closed)
