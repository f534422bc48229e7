"""The listening socket after the parent is killed (loadtest/aftermath.py), on our real
server: with children that keep it, the port outlives the parent; with children that
close it, it closes with the parent."""

from __future__ import annotations

import csv
import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from diagnostics.contract import ListenerAftermath, ScenarioRecord
from diagnostics.sockets import is_listening
from loadtest import aftermath
from loadtest.cgroup import PidsCgroup
from loadtest.processes import ManagedProcess
from loadtest.scenarios import SCENARIOS
from loadtest.target import Target, start_ours
from reports import listener
from tests.cgroup_helpers import MakeCgroup, make_cgroup, needs_cgroup
from tests.server_helpers import reap_adopted, zombie_children_of_self
from tests.test_loadtest_harness import assert_nothing_left, read_json, run_dir, run_harness
from tests.test_server_listener import bind_error

__all__ = ["make_cgroup"]  # the fixture, used by name


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Target]]:
    """Servers started as the harness starts them; each is stopped, and what it left
    reaped, whatever the test does."""
    started: list[Target] = []
    yield started
    for target in started:
        target.stop(grace=10)
    reap_adopted(zombie_children_of_self())


def start(servers: list[Target], folder: Path, scenario: str, cgroup: PidsCgroup | None) -> Target:
    folder.mkdir()
    procs = None if cgroup is None else cgroup.procs_file
    target = start_ours(SCENARIOS[scenario], 0, folder, 10, cgroup_procs=procs)
    servers.append(target)
    return target


def check_shown(shown: ListenerAftermath, target: Target) -> None:
    """What a child that keeps the listening socket does, figure by figure."""
    assert shown.errors == [] and shown.parent_pid == target.pid
    assert not target.process.running()  # killed alone, and reaped
    assert shown.holders_at_stop == aftermath.HELD and shown.listening_after_stop is True
    assert shown.bind_while_held == "EADDRINUSE"
    assert (shown.probes, shown.queued, shown.answered_while_held) == (aftermath.PROBES,) * 2 + (0,)
    # Queued, never answered: each ends when the last holder closes the socket.
    assert set(shown.probe_fates) <= {"reset", "closed"}
    assert sum(shown.probe_fates.values()) == aftermath.PROBES
    assert shown.held_answered == aftermath.HELD  # each child still served its client
    assert shown.bind_after == "ok" and not is_listening(target.port)
    assert bind_error(target.port) is None
    holders = [point[1] for point in shown.timeline]
    assert max(holders) == aftermath.HELD and holders[-1] == 0
    # While any child holds the socket the port is in LISTEN, and it closes with the last.
    assert all(listening for _at, held, listening in shown.timeline if held)
    assert shown.stopped_at and shown.parent_gone_at and shown.port_free_at
    assert shown.stopped_at <= shown.parent_gone_at < shown.port_free_at
    assert all(shown.parent_gone_at < at for at in shown.released_at)


def test_the_port_outlives_a_parent_whose_children_keep_it(
    servers: list[Target], tmp_path: Path
) -> None:
    """Without a cgroup the holders are found among the parent's children, then among
    this process's (the subreaper they are handed to)."""
    target = start(servers, tmp_path / "server", "listener-leak", None)
    shown = aftermath.show(target, None, work_ms=200)
    check_shown(shown, target)
    assert shown.counted_from.startswith("the parent's children")


@needs_cgroup
def test_the_holders_are_counted_from_the_servers_cgroup(
    servers: list[Target], tmp_path: Path, make_cgroup: MakeCgroup
) -> None:
    group = make_cgroup("aftermath", 100)
    target = start(servers, tmp_path / "server", "listener-leak", group)
    shown = aftermath.show(target, group, work_ms=200)
    check_shown(shown, target)
    assert shown.counted_from == "the server's cgroup.procs"


def test_a_port_whose_children_closed_it_closes_with_the_parent(
    servers: list[Target], tmp_path: Path
) -> None:
    """The tutorial's rule kept: the same steps on reaper-loop find nothing holding the port,
    and every connection made after the parent died is refused."""
    target = start(servers, tmp_path / "server", "reaper-loop", None)
    shown = aftermath.show(target, None, work_ms=0)
    assert shown.errors == [] and shown.listening_after_stop is False
    assert shown.bind_while_held == "ok" and shown.queued == 0
    assert shown.probe_fates == {"refused": aftermath.PROBES}
    assert shown.held_answered == aftermath.HELD
    assert listener.headline(shown).endswith(
        "the port closed with it, no child held the listening socket"
    )


def test_a_parent_that_listens_on_nothing_is_not_killed(
    servers: list[Target], tmp_path: Path
) -> None:
    process = ManagedProcess("sleep", ["sleep", "60"], tmp_path / "sleep.log", tmp_path)
    target = Target(process, port=1)
    servers.append(target)
    shown = aftermath.show(target, None, work_ms=0)
    assert shown.errors == [f"the parent (PID {process.pid}) listens on nothing"]
    assert shown.stopped_at is None and process.running()


def test_the_record_reads_back_as_reports_read_it(servers: list[Target], tmp_path: Path) -> None:
    target = start(servers, tmp_path / "server", "listener-leak", None)
    shown = aftermath.show(target, None, work_ms=200)
    record = ScenarioRecord(name="listener-leak", started=0.0, listener_aftermath=shown.to_json())
    read, notes = listener.read(ScenarioRecord.checked(record.to_json())[0])
    assert (read, notes) == (shown, [])
    section = listener.section(record, "listener-leak.png")
    assert section is not None and section["figure"] == "listener-leak.port.png"
    assert "EADDRINUSE" in section["headline"] and section["held_for_ms"] > 0
    assert errno.errorcode[errno.EADDRINUSE] in " ".join(section["paragraphs"])


@pytest.mark.slow
def test_listener_leak_end_to_end(tmp_path: Path) -> None:
    """The harness as a user runs it: the column on a server with and without the fault,
    the aftermath in scenario.json and summary.json, its figure, and the truth about the
    work the children did."""
    # Children that work 200 ms: 8 users keep pace with 16 requests/s (no low-rate warning).
    result = run_harness(
        tmp_path, "--scenarios", "reaper-loop,listener-leak", "--duration", "3",
        "--users", "8", "--rate", "16",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    meta = read_json(run / "run.json")
    assert meta["parameters"]["work_ms"] == 0
    assert meta["parameters"]["scenario_work_ms"] == {"listener-leak": 200}
    loop, leak = (
        read_json(run / name / "scenario.json") for name in ("reaper-loop", "listener-leak")
    )
    assert leak["status"] == "ok" and leak["asked"]["work_ms"] == 200
    assert leak["server_flags"][-3:] == ["--child-keeps-listener", "--work-ms", "200"]
    assert loop["listener_aftermath"] is None and loop["server_flags"][-1] == "0"
    shown = ListenerAftermath.from_json(leak["listener_aftermath"])
    assert (shown.signal, shown.holders_at_stop, shown.bind_while_held) == (
        "SIGKILL",
        aftermath.HELD,
        "EADDRINUSE",
    )
    assert shown.queued == aftermath.PROBES and shown.answered_while_held == 0
    assert shown.probe_fates.keys() <= {"reset", "closed"} and shown.bind_after == "ok"
    assert leak["server_counters"] is None  # killed: no counters, and none expected
    holders = {
        name: samples_column(run / name, "listener_holders")
        for name in ("reaper-loop", "listener-leak")
    }
    # A correct child holds the socket from its fork to its first instruction, which closes
    # it: a sample may land in that instant, but not often.
    loop_held = [count for count in holders["reaper-loop"] if count]
    assert len(loop_held) <= len(holders["reaper-loop"]) // 10 and max(loop_held, default=0) <= 2
    assert max(holders["listener-leak"]) > 2
    summary = {s["name"]: s for s in read_json(run / "summary.json")["scenarios"]}
    assert summary["listener-leak"]["missing"] == [] and summary["listener-leak"]["warnings"] == []
    section = summary["listener-leak"]["listener_aftermath"]
    assert section["figure"] == "listener-leak.port.png" and (run / section["figure"]).is_file()
    assert (
        "EADDRINUSE" in section["headline"] and summary["reaper-loop"]["listener_aftermath"] is None
    )
    assert listener.LESSON in (run / "index.html").read_text()
    assert section["headline"] in (run / "summary.md").read_text()
    assert_nothing_left(loop, leak)


def samples_column(folder: Path, column: str) -> list[int]:
    with (folder / "samples.csv").open(newline="") as rows:
        return [int(row[column]) for row in csv.DictReader(rows)]
