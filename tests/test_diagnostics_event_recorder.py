"""The event recorder on real processes: every fork, exit and reap of a tree, by the
kernel's sources, and the fallbacks where a source is missing.

Each test drives a tree (tests/event_helpers.py) step by step and waits on the
recorder's own exact counts, never on time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from diagnostics import contract, event_recorder, lifetimes
from diagnostics.contract import ChildRecord, EventSummary
from diagnostics.event_recorder import EventRecorder
from diagnostics.events import read
from diagnostics.recorder import Recorder
from tests import diag_helpers as h
from tests.event_helpers import (
    REAP_SOURCES,
    OutsideRecorder,
    Tree,
    require_connector,
    require_reap_probe,
    require_reap_source,
)


@contextmanager
def recording(tree: Tree, folder: Path, **options: Any) -> Iterator[EventRecorder]:
    recorder = EventRecorder(tree.pid, folder, **options)
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.stop()


def settled(recorder: EventRecorder, live: int, zombies: int) -> None:
    h.wait_until(
        lambda: (recorder.live, recorder.zombies) == (live, zombies),
        f"{live} live children and {zombies} zombies (now {recorder.live}, {recorder.zombies};"
        f" error: {recorder.error})",
    )


def by_pid(rows: list[ChildRecord]) -> dict[int, ChildRecord]:
    table = {row.pid: row for row in rows}
    assert len(table) == len(rows), "one row per child"
    return table


def file_rows(folder: Path) -> list[ChildRecord]:
    rows, notes = read(folder / contract.EVENTS)
    assert notes == []
    return rows


@pytest.mark.parametrize(("source", "options"), REAP_SOURCES)
def test_a_fork_burst_every_fork_exit_and_reap_is_recorded(
    tmp_path: Path, source: str, options: dict[str, Any]
) -> None:
    require_reap_source(source)
    with Tree() as tree, recording(tree, tmp_path, **options) as recorder:
        pids = tree.ask("fork 300 3")
        settled(recorder, 0, 300)
        tree.ask("reap " + " ".join(map(str, pids)))
        settled(recorder, 0, 0)
        summary = recorder.stop()
    rows = by_pid(file_rows(tmp_path))
    assert set(rows) == set(pids)
    for row in rows.values():
        assert (row.origin, row.parent, row.depth) == (contract.FORKED, tree.pid, 1)
        assert (row.exit_source, row.exit_code, row.exit_signal) == ("connector", 3, None)
        assert (row.reap_source, row.reaped_by) == (source, tree.pid)
        assert row.forked_at is not None and row.exited_at is not None
        assert row.reaped_at is not None and row.started is not None
        assert row.forked_at <= row.exited_at <= row.reaped_at
        assert row.seen_at >= row.forked_at
    assert (summary.events_lost, summary.overflows, summary.unwatched) == (0, 0, 0)
    assert summary.sources == {"forks": "connector", "exits": "connector", "reaps": source}
    assert summary.sampled == {} and summary.errors == []
    assert (summary.children, summary.forked, summary.pre_existing) == (300, 300, 0)
    figures = summary.figures
    assert (figures["forked"], figures["exited"], figures["reaped"]) == (300, 300, 300)
    assert (figures["peak_zombies"], figures["final_zombies"]) == (300, 0)
    assert figures["lifetimes"]["measured"] == 300 and figures["lifetimes"]["never_reaped"] == 0
    assert summary.cpu_seconds is not None
    # a poller's latency only where reaps are seen by waking for them
    assert (summary.reap_latency_ms is None) == (source == contract.REAP_FROM_KERNEL)


def test_exits_by_signal_name_the_signal(tmp_path: Path) -> None:
    require_connector()
    with Tree() as tree, recording(tree, tmp_path) as recorder:
        killed = {tree.ask("sleep")[0]: sig for sig in (signal.SIGKILL, signal.SIGTERM)}
        settled(recorder, 2, 0)
        for pid, sig in killed.items():
            tree.ask(f"kill {pid} {int(sig)}")
        settled(recorder, 0, 2)
        tree.ask("reap " + " ".join(map(str, killed)))
        settled(recorder, 0, 0)
    rows = by_pid(file_rows(tmp_path))
    assert {pid: (rows[pid].exit_code, rows[pid].exit_signal) for pid in killed} == {
        pid: (None, sig.name) for pid, sig in killed.items()
    }


def test_zombies_never_reaped_are_zombies_at_the_end(tmp_path: Path) -> None:
    require_connector()
    with Tree() as tree:
        with recording(tree, tmp_path) as recorder:
            kept = tree.ask("fork 4 0")
            reaped = tree.ask("fork 6 1")
            settled(recorder, 0, 10)
            tree.ask("reap " + " ".join(map(str, reaped)))
            settled(recorder, 0, 4)
            summary = recorder.stop()
        tree.ask("reap " + " ".join(map(str, kept)))
    rows = by_pid(file_rows(tmp_path))
    assert all(rows[pid].reaped_at is None and rows[pid].reap_source == "" for pid in kept)
    assert all(rows[pid].reaped_at is not None for pid in reaped)
    life = summary.figures["lifetimes"]
    assert (life["exited"], life["measured"], life["never_reaped"]) == (10, 6, 4)
    assert summary.figures["final_zombie_holders"] == [{"pid": tree.pid, "depth": 1, "zombies": 4}]


def test_a_reparented_grandchild_is_followed_and_reaped_by_the_subreaper(tmp_path: Path) -> None:
    require_connector()
    with Tree() as tree, recording(tree, tmp_path) as recorder:
        tree.ask("subreaper")
        child, grandchild = tree.ask("orphan")
        settled(recorder, 1, 1)  # the child exited; the grandchild, adopted, lives
        tree.ask(f"reap {child}")
        settled(recorder, 1, 0)
        tree.ask(f"kill {grandchild} {int(signal.SIGTERM)}")
        settled(recorder, 0, 1)
        tree.ask(f"reap {grandchild}")
        settled(recorder, 0, 0)
    rows = by_pid(file_rows(tmp_path))
    assert (rows[child].depth, rows[child].reaped_by) == (1, tree.pid)
    assert (rows[grandchild].depth, rows[grandchild].parent) == (2, child)
    assert (rows[grandchild].adopted_by, rows[grandchild].reaped_by) == (tree.pid, tree.pid)
    assert rows[grandchild].exit_signal == "SIGTERM"


def test_an_orphan_adopted_outside_the_tree_is_still_followed(tmp_path: Path) -> None:
    """pytest is a subreaper (--child-leaks): the grandchild comes here, and here it is reaped."""
    require_connector()
    with Tree() as tree, recording(tree, tmp_path) as recorder:
        child, grandchild = tree.ask("orphan")
        tree.ask(f"reap {child}")
        settled(recorder, 1, 0)
        os.kill(grandchild, signal.SIGKILL)
        settled(recorder, 0, 1)
        os.waitpid(grandchild, 0)
        settled(recorder, 0, 0)
    row = by_pid(file_rows(tmp_path))[grandchild]
    assert (row.adopted_by, row.reaped_by, row.exit_signal) == (os.getpid(), os.getpid(), "SIGKILL")


def test_a_child_gone_before_it_was_looked_at_keeps_the_child_it_forked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow turn of the recorder (seen under PID 1 with hundreds of zombies): by the time
    it looks at a child, the child has forked, exited and been reaped, and the fork of its
    own child was queued after the batch being handled. That grandchild is still recorded."""
    require_connector()
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    real_open = event_recorder.pidfds.open_pidfd
    first: list[int] = []

    def look_late(pid: int) -> int | None:
        if not first:  # the child: let it fork its child and exit, and wait for its reap
            first.append(pid)
            with open(fifo, "wb") as go:
                go.write(b"!")
            h.wait_until(lambda: not Path(f"/proc/{pid}").exists(), "the child to be reaped")
        return real_open(pid)

    monkeypatch.setattr(event_recorder.pidfds, "open_pidfd", look_late)
    with Tree() as tree, recording(tree, tmp_path / "record", reap_probe=False) as recorder:
        child, grandchild = tree.ask(f"late-orphan {fifo}")
        h.wait_until(
            lambda: (recorder.counts().deeper_live, recorder.counts().reaps) == (1, 1),
            "the child reaped and the grandchild it forked alive, in the record",
        )
        os.kill(grandchild, signal.SIGKILL)
        os.waitpid(grandchild, 0)
        settled(recorder, 0, 0)
    rows = by_pid(file_rows(tmp_path / "record"))
    assert rows[child].reap_source == contract.REAP_GONE_WHEN_LOOKED
    assert (rows[grandchild].parent, rows[grandchild].depth) == (child, 2)
    assert rows[grandchild].exit_signal == "SIGKILL"


def test_children_there_before_the_record_are_pre_existing_workers(tmp_path: Path) -> None:
    require_connector()
    with Tree() as tree:
        workers = [tree.ask("sleep")[0] for _ in range(3)]
        zombie = tree.ask("fork 1 5")[0]
        h.wait_until(lambda: _state(zombie) == "Z", "the zombie")
        with recording(tree, tmp_path) as recorder:
            settled(recorder, 3, 1)
            tree.ask(f"kill {workers[0]} {int(signal.SIGTERM)}")
            tree.ask(f"reap {workers[0]} {zombie}")
            replacement = tree.ask("sleep")[0]
            settled(recorder, 3, 0)
            summary = recorder.stop()
    rows = by_pid(file_rows(tmp_path))
    assert {pid: rows[pid].origin for pid in [*workers, zombie]} == dict.fromkeys(
        [*workers, zombie], contract.PRE_EXISTING
    )
    assert all(rows[pid].forked_at is None for pid in [*workers, zombie])
    assert (rows[zombie].exit_source, rows[zombie].exit_code) == ("before-seen", 5)
    assert rows[replacement].origin == contract.FORKED
    assert summary.figures["zombies_before"] == {"count": 1, "left": 0, "holders": []}
    assert summary.figures["workers"] == {
        "pre_existing": 3,
        "retired": 1,
        "retired_reaped": 1,
        "slowest_retired_reap_s": summary.figures["workers"]["slowest_retired_reap_s"],
        "kept": 2,
        "forked": 1,
        "forked_alive_at_end": 1,
    }
    assert summary.figures["workers"]["slowest_retired_reap_s"] is not None


def _state(pid: int, task: int | None = None) -> str:
    where = f"/proc/{pid}" if task is None else f"/proc/{pid}/task/{task}"
    data = Path(f"{where}/stat").read_bytes()
    return data[data.rindex(b")") + 2 :].split()[0].decode()


def _stopped(pid: int) -> bool:
    return all(_state(pid, int(task)) == "T" for task in os.listdir(f"/proc/{pid}/task"))


def test_every_sample_shows_no_more_zombies_than_the_events(tmp_path: Path) -> None:
    """The cross-check on a tree that churns: the sampler and the events side by side."""
    require_connector()
    samples: list[tuple[float, int]] = []
    holder = h.spawn(h.CHURN)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        events = EventRecorder(holder.pid, tmp_path)
        events.start()
        sampler = Recorder(
            holder.pid,
            tmp_path / contract.SAMPLES,
            interval=0.005,
            on_sample=lambda s: samples.append((s.time, s.zombies + s.descendant_zombies)),
        )
        with sampler:
            h.wait_until(lambda: len(samples) >= 100, "100 samples")
        summary = events.stop()
    finally:
        h.end_by_stdin(holder)
    rows = file_rows(tmp_path)
    assert summary.pre_existing >= 9 and summary.forked > 100  # 5 zombies, 3 live, 1 middle
    assert lifetimes.cross_check(rows, samples) == []
    peak = lifetimes.peak_zombies(lifetimes.steps(rows))
    assert peak is not None and max(zombies for _, zombies in samples) <= peak.zombies
    too_many = [(moment, peak.zombies + 1) for moment, _ in samples]  # the check can fail
    assert len(lifetimes.cross_check(rows, too_many)) == len(samples)


def test_without_the_connector_children_are_found_by_scans(tmp_path: Path) -> None:
    with Tree() as tree:
        sleeper = tree.ask("sleep")[0]
        with recording(tree, tmp_path, connector=False) as recorder:
            late = tree.ask("sleep")[0]
            settled(recorder, 2, 0)
            tree.ask(f"kill {late} {int(signal.SIGKILL)}")
            settled(recorder, 1, 1)
            tree.ask(f"reap {late}")
            settled(recorder, 1, 0)
            summary = recorder.stop()
    rows = by_pid(file_rows(tmp_path))
    assert (rows[sleeper].origin, rows[late].origin) == (contract.PRE_EXISTING, contract.DISCOVERED)
    assert rows[late].forked_at is None and rows[late].started is not None
    assert (rows[late].exit_source, rows[late].reap_source) == ("pidfd", "pidfd")
    assert summary.sources == {"forks": "scan", "exits": "pidfd", "reaps": "pidfd"}
    assert summary.connector == "switched off" and summary.events_lost is None
    assert "there is no connector" in summary.reap_probe  # not "switched off": not asked
    assert "no fork time is known" in summary.sampled["forks"]
    assert set(summary.sampled) == {"forks"}


def test_without_pidfds_reaps_are_found_by_scans(tmp_path: Path) -> None:
    require_connector()
    with Tree() as tree, recording(tree, tmp_path, pidfds=False) as recorder:
        pids = tree.ask("fork 5 2")
        settled(recorder, 0, 5)
        tree.ask("reap " + " ".join(map(str, pids)))
        settled(recorder, 0, 0)
        summary = recorder.stop()
    rows = by_pid(file_rows(tmp_path))
    assert {(row.exit_source, row.exit_code, row.reap_source) for row in rows.values()} == {
        ("connector", 2, "scan")
    }
    assert summary.sources["reaps"] == "scan" and "scans of /proc" in summary.sampled["reaps"]
    assert summary.figures["lifetimes"]["measured"] == 0  # a scan bounds a reap, no more


def test_without_either_source_everything_is_sampled(tmp_path: Path) -> None:
    with Tree() as tree, recording(tree, tmp_path, connector=False, pidfds=False) as recorder:
        sleeper = tree.ask("sleep")[0]
        settled(recorder, 1, 0)
        tree.ask(f"kill {sleeper} {int(signal.SIGKILL)}")
        settled(recorder, 0, 1)
        tree.ask(f"reap {sleeper}")
        settled(recorder, 0, 0)
        summary = recorder.stop()
    row = by_pid(file_rows(tmp_path))[sleeper]
    assert (row.exit_source, row.exit_signal, row.reap_source) == ("scan", "SIGKILL", "scan")
    assert set(summary.sampled) == {"forks", "exits", "reaps"}


def test_in_a_user_namespace_the_connector_is_ignored_and_scans_stand_in(tmp_path: Path) -> None:
    prefix = ["unshare", "--user", "--map-root-user"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no user namespace: {probe.stderr.strip()}")
    with Tree() as tree:
        pid = tree.ask("sleep")[0]
        outside = OutsideRecorder(tree.pid, tmp_path, prefix=prefix)
        try:
            tree.ask(f"kill {pid} {int(signal.SIGKILL)}")
            tree.ask(f"reap {pid}")
            h.wait_until(lambda: _rows_on_file(tmp_path) == 1, "its row")
        finally:
            summary = EventSummary.from_json(outside.stop())
    assert summary.sources == {"forks": "scan", "exits": "pidfd", "reaps": "pidfd"}
    assert "initial user and PID namespaces" in summary.connector
    assert "initial user and PID namespaces" in summary.sampled["forks"]
    assert summary.events_lost is None
    row = by_pid(file_rows(tmp_path))[pid]
    assert (row.origin, row.exit_source, row.reap_source) == ("pre-existing", "pidfd", "pidfd")


def _rows_on_file(folder: Path) -> int:
    path = folder / contract.EVENTS
    return len(read(path)[0]) if path.exists() else -1


def test_as_an_unprivileged_user(tmp_path: Path) -> None:
    """No root: since Linux 6.6 the connector still listens (with a smaller buffer, no
    SO_RCVBUFFORCE); before, it refuses and scans stand in. Either way, the record says."""
    h.require_nobody()
    folder = Path(tempfile.mkdtemp(prefix="reaperlab-events-"))
    try:
        folder.chmod(0o777)
        with Tree() as tree:
            outside = OutsideRecorder(tree.pid, folder, prefix=h.AS_NOBODY, python=h.SYSTEM_PYTHON)
            try:
                pids = tree.ask("fork 20 4")
                tree.ask("reap " + " ".join(map(str, pids)))
                h.wait_until(lambda: _rows_on_file(folder) == 20, "20 rows")
            finally:
                summary = EventSummary.from_json(outside.stop())
        rows = by_pid(file_rows(folder))
    finally:
        shutil.rmtree(folder)
    assert set(rows) == set(pids)
    assert summary.receive_buffer_bytes is None or summary.receive_buffer_bytes < 64 * 2**20
    if summary.connector == "ok":
        assert summary.sources["forks"] == "connector" and summary.events_lost == 0
        assert {row.exit_code for row in rows.values()} == {4}
    else:
        assert "CAP_NET_ADMIN" in summary.connector and "forks" in summary.sampled
    assert {row.reap_source for row in rows.values()} <= {"pidfd", "gone-when-looked"}


@pytest.mark.parametrize(("source", "options"), REAP_SOURCES)
def test_a_reused_pid_is_two_children(tmp_path: Path, source: str, options: dict[str, Any]) -> None:
    """Stopped (SIGSTOP) while a child forks, exits, is reaped and its PID goes to the next
    child: the recorder reads the events late, after both are gone, and keeps them apart.

    The second child asks for the first one's PID (clone3's set_tid), which leaves the
    machine's PID allocation as it was; writing ns_last_pid would move it for every
    process, and a fresh PID namespace would not do: its PIDs are its own, while the
    recorder sees the host's.

    Where the kernel stamps the reaps, both lives are exact: the first child's reap comes
    before the fork that takes its PID. With pidfds, opened too late, both are bounds."""
    require_reap_source(source)
    with Tree() as tree:
        outside = OutsideRecorder(tree.pid, tmp_path, options)
        try:
            os.kill(outside.proc.pid, signal.SIGSTOP)
            h.wait_until(lambda: _stopped(outside.proc.pid), "every thread of the recorder stopped")
            try:
                answer = tree.ask("reuse")
            finally:
                os.kill(outside.proc.pid, signal.SIGCONT)
            if not answer:
                pytest.skip("other processes took the PID first, 200 times over")
            (reused,) = answer
            h.wait_until(lambda: _rows_on_file(tmp_path) >= 2, "the rows of both")
        finally:
            summary = EventSummary.from_json(outside.stop())
    rows = [row for row in file_rows(tmp_path) if row.pid == reused]
    assert len(rows) == 2
    first, second = sorted(rows, key=lambda row: row.forked_at or 0)
    assert (first.exit_code, second.exit_code) == (0, 7)
    assert first.exited_at is not None and second.forked_at is not None
    assert first.exited_at <= second.forked_at
    if source == contract.REAP_FROM_KERNEL:
        assert (first.reap_source, second.reap_source) == (source, source)
        assert first.reaped_at is not None and first.reaped_at <= second.forked_at
        assert summary.unwatched == 0
        return
    assert first.reap_source == "pid-reused" and first.reaped_at == second.forked_at
    assert second.reap_source == "gone-when-looked"
    assert summary.unwatched >= 2 and any("only bounds" in w for w in summary.warnings)


def test_events_lost_to_a_full_buffer_are_counted_and_scans_find_the_children(
    tmp_path: Path,
) -> None:
    """A buffer of a few kilobytes and a recorder stopped while the tree forks: the kernel
    drops events, the gaps in its sequence numbers count them, and a scan finds the
    children whose forks were lost."""
    require_connector()
    with Tree() as tree:
        outside = OutsideRecorder(tree.pid, tmp_path, {"receive_buffer": 4096})
        try:
            os.kill(outside.proc.pid, signal.SIGSTOP)
            h.wait_until(lambda: _stopped(outside.proc.pid), "every thread of the recorder stopped")
            try:
                sleepers = [tree.ask("sleep")[0] for _ in range(40)]
            finally:
                os.kill(outside.proc.pid, signal.SIGCONT)
        finally:
            summary = EventSummary.from_json(outside.stop())
    rows = by_pid(file_rows(tmp_path))
    assert set(sleepers) <= set(rows)
    assert {rows[pid].origin for pid in sleepers} <= {contract.FORKED, contract.DISCOVERED}
    assert contract.DISCOVERED in {rows[pid].origin for pid in sleepers}
    assert summary.events_lost is not None and summary.events_lost >= summary.overflows >= 1
    assert "events lost" in summary.sampled["forks"]


@pytest.mark.slow  # a thousand zombies held, each with its pidfd: a few seconds
def test_a_thousand_zombies_each_watched_then_every_pidfd_closed(tmp_path: Path) -> None:
    require_connector()
    with Tree() as tree:
        before = len(os.listdir("/proc/self/fd"))
        with recording(tree, tmp_path, reap_probe=False) as recorder:
            pids = tree.ask("fork 1000 0")
            settled(recorder, 0, 1000)
            assert len(os.listdir("/proc/self/fd")) >= before + 1000
            tree.ask("reap " + " ".join(map(str, pids)))
            settled(recorder, 0, 0)
            summary = recorder.stop()
        assert len(os.listdir("/proc/self/fd")) <= before
    assert summary.unwatched == 0 and summary.figures["lifetimes"]["measured"] == 1000


def test_more_children_than_descriptors_are_watched_by_scans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit of 100 descriptors keeps 64 for the rest of the process: 36 pidfds at most."""
    require_connector()
    monkeypatch.setattr(event_recorder.pidfds, "raise_descriptor_limit", lambda: 100)
    with Tree() as tree, recording(tree, tmp_path, reap_probe=False) as recorder:
        pids = tree.ask("fork 60 0")
        settled(recorder, 0, 60)
        tree.ask("reap " + " ".join(map(str, pids)))
        settled(recorder, 0, 0)
        summary = recorder.stop()
    rows = file_rows(tmp_path)
    assert Counter(row.reap_source for row in rows) == {"pidfd": 36, "scan": 24}
    assert any("no descriptor to spare" in warning for warning in summary.warnings)


@pytest.mark.parametrize(("source", "options"), REAP_SOURCES)
def test_the_reader_yields_at_wake_up_only_where_the_kernel_stamps_the_reaps(
    tmp_path: Path, source: str, options: dict[str, Any]
) -> None:
    """SCHED_BATCH where a late read moves no time; a pidfd reader's wake-up is the reap's
    time, so it keeps the default policy."""
    require_reap_source(source)
    with Tree() as tree, recording(tree, tmp_path, **options) as recorder:
        tree.ask("fork 1 0")
        settled(recorder, 0, 1)  # the thread has run its turns
        (reader,) = [t for t in threading.enumerate() if t.name == f"events-{tree.pid}"]
        assert reader.native_id is not None
        policy = os.sched_getscheduler(reader.native_id)
    expected = os.SCHED_BATCH if source == contract.REAP_FROM_KERNEL else os.SCHED_OTHER
    assert policy == expected


def test_a_root_that_does_not_exist_is_one_error(tmp_path: Path) -> None:
    recorder = EventRecorder(h.MISSING_PID, tmp_path)
    with pytest.raises(ProcessLookupError):
        recorder.start()
    recorder.stop()
    assert not (tmp_path / contract.EVENTS).exists()


def test_the_recorder_imports_only_the_standard_library() -> None:
    """It must run in any Python (an unprivileged user's, a container's): no psutil."""
    code = (
        "import sys, diagnostics.event_recorder;"
        " print(sorted(m for m in sys.modules if m.split('.')[0] in ('psutil', 'numpy')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=h.REPO, check=True
    )
    assert done.stdout.strip() == "[]"


def test_children_the_kernel_reaps_for_a_parent_that_ignores_sigchld_are_reaped_at_once(
    tmp_path: Path,
) -> None:
    """No wait call reaps them, so no pidfd poller is needed to see it: the kernel stamps
    each reap as the child exits, for the parent that ignores SIGCHLD."""
    require_reap_probe()
    with Tree() as tree, recording(tree, tmp_path) as recorder:
        tree.ask("ignore")
        pids = tree.ask("fork 50 2")
        h.wait_until(lambda: recorder.counts().reaps == 50, "50 reaps in the record")
        summary = recorder.stop()
    rows = by_pid(file_rows(tmp_path))
    assert set(rows) == set(pids)
    for row in rows.values():
        assert (row.reap_source, row.reaped_by, row.exit_code) == ("kernel", tree.pid, 2)
        assert row.exited_at is not None and row.reaped_at is not None
        assert row.forked_at is not None and row.forked_at <= row.exited_at <= row.reaped_at
    assert summary.figures["final_zombies"] == 0
    assert summary.figures["lifetimes"]["measured"] == 50


def test_an_orphan_reaped_by_its_subreaper_is_stamped_with_that_reaper(tmp_path: Path) -> None:
    require_reap_probe()
    with Tree() as tree, recording(tree, tmp_path) as recorder:
        tree.ask("subreaper")
        child, grandchild = tree.ask("orphan")
        tree.ask(f"reap {child}")
        h.wait_until(lambda: recorder.counts().reaps == 1, "the child reaped")
        tree.ask(f"kill {grandchild} {int(signal.SIGKILL)}")
        tree.ask(f"reap {grandchild}")
        settled(recorder, 0, 0)
    rows = by_pid(file_rows(tmp_path))
    assert (rows[child].reap_source, rows[child].reaped_by) == ("kernel", tree.pid)
    orphan = rows[grandchild]
    assert (orphan.parent, orphan.depth, orphan.exit_signal) == (child, 2, "SIGKILL")
    assert (orphan.reap_source, orphan.reaped_by, orphan.adopted_by) == (
        "kernel",
        tree.pid,
        tree.pid,
    )


def test_a_zombie_handed_to_an_adopter_that_ignores_sigchld_is_released_with_its_parent(
    tmp_path: Path,
) -> None:
    """No wait call and no exit of its own tells this reap: the kernel releases the zombie
    as its parent exits, for the subreaper that ignores SIGCHLD."""
    require_reap_probe()
    with Tree() as tree, recording(tree, tmp_path) as recorder:
        tree.ask("subreaper")
        tree.ask("ignore")
        child, grandchild = tree.ask("zombie-orphan")
        h.wait_until(lambda: recorder.counts().reaps == 2, "both reaped, in the record")
        settled(recorder, 0, 0)
    rows = by_pid(file_rows(tmp_path))
    parent, zombie = rows[child], rows[grandchild]
    assert (parent.reap_source, parent.reaped_by) == ("kernel", tree.pid)
    assert (zombie.parent, zombie.depth, zombie.exit_code) == (child, 2, 5)
    assert zombie.reap_source == "with-parent" and zombie.reaped_at == parent.exited_at
    assert zombie.exited_at is not None and zombie.reaped_at is not None
    assert zombie.exited_at <= zombie.reaped_at


def test_a_child_that_ran_exec_has_that_command_even_gone_before_it_was_read(
    tmp_path: Path,
) -> None:
    """Read every 20 ms, a child that runs a short command is often gone before /proc can
    be read: the command line comes from the kernel, at the exec. (With pidfds, woken at
    once, the read in /proc mostly wins the race; when it loses, the child keeps its
    parent's command: events.md, Limits.)"""
    require_reap_probe()
    with Tree() as tree, recording(tree, tmp_path) as recorder:
        pids = [tree.ask("run /usr/bin/true")[0] for _ in range(20)]
        h.wait_until(lambda: recorder.counts().reaps == 20, "20 reaps in the record")
    rows = by_pid(file_rows(tmp_path))
    assert all("true" in rows[pid].command for pid in pids), [rows[pid].command for pid in pids]
