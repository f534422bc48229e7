"""Figures from an event record: counts at every moment, zombie lifetimes, workers,
holders and the cross-check against samples; and events.csv read back as written."""

from __future__ import annotations

import csv
import inspect
import io
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from diagnostics import contract, lifetimes
from diagnostics.clocks import boot_time
from diagnostics.contract import ChildRecord, EventSummary
from diagnostics.events import Child, read
from diagnostics.procfs import CLOCK_TICKS

ROOT = 100


def child(pid: int, **changes: object) -> ChildRecord:
    """A child forked at 10.0 by the root, alive, as the recorder writes one."""
    base = ChildRecord(
        pid=pid,
        started=10.0,
        parent=ROOT,
        depth=1,
        command="server",
        origin=contract.FORKED,
        seen_at=10.0,
        forked_at=10.0,
        exited_at=None,
        exit_source="",
        exit_code=None,
        exit_signal=None,
        reaped_at=None,
        reap_source="",
        reaped_by=None,
        adopted_by=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def died(pid: int, exited: float, reaped: float | None, **changes: object) -> ChildRecord:
    fields: dict[str, object] = {
        "exited_at": exited,
        "exit_source": "connector",
        "exit_code": 0,
        "reaped_at": reaped,
        "reap_source": "" if reaped is None else "pidfd",
        "reaped_by": None if reaped is None else ROOT,
    }
    return child(pid, **{**fields, **changes})


def test_counts_are_step_functions_exact_at_every_moment() -> None:
    rows = [
        died(1, exited=11.0, reaped=11.5),
        died(2, exited=12.0, reaped=None),
        child(3, forked_at=10.5, seen_at=10.5),
        child(4, origin=contract.PRE_EXISTING, forked_at=None, seen_at=9.0,
              exit_source="before-seen"),
    ]  # fmt: skip
    series = lifetimes.steps(rows)
    assert [(s.time, s.live, s.zombies) for s in series] == [
        (9.0, 0, 1),
        (10.0, 2, 1),
        (10.5, 3, 1),
        (11.0, 2, 2),
        (11.5, 2, 1),
        (12.0, 1, 2),
    ]
    assert lifetimes.at(series, 8.0) == lifetimes.Step(8.0, 0, 0)
    assert (lifetimes.at(series, 11.2).live, lifetimes.at(series, 11.2).zombies) == (2, 2)
    assert lifetimes.at(series, 11.5).zombies == 1  # the step at that very moment counts
    peak = lifetimes.peak_zombies(series)
    assert peak is not None and (peak.time, peak.zombies) == (11.0, 2)
    grandchild = [replace(rows[1], depth=2)]
    deeper = lifetimes.steps(grandchild, lifetimes.Depths(grandchild, ROOT).deeper)
    assert [(s.time, s.zombies) for s in deeper] == [(10.0, 0), (12.0, 1)]
    # Once the root adopted it (its parent died), its zombie is the root's own, as ps shows.
    orphan = [replace(grandchild[0], adopted_by=ROOT, adopted_at=10.5)]
    depths = lifetimes.Depths(orphan, ROOT)
    assert lifetimes.steps(orphan, depths.deeper) == []
    assert [(s.time, s.zombies) for s in lifetimes.steps(orphan, depths.direct)] == [
        (10.0, 0),
        (12.0, 1),
    ]


def test_lifetimes_count_measured_bounded_and_never_reaped() -> None:
    rows = [died(pid, exited=10.0, reaped=10.0 + pid / 1000) for pid in range(1, 101)]
    rows += [
        died(200, exited=11.0, reaped=None),
        died(201, exited=11.0, reaped=12.0, reap_source="gone-when-looked"),
        child(202, reaped_at=13.0, reap_source="scan"),  # reaped, its exit never seen
        child(203),  # alive at the end: not in the lifetimes
    ]
    figures = lifetimes.lifetimes(rows)
    assert (figures.exited, figures.measured, figures.bounded, figures.never_reaped) == (
        103,
        100,
        2,
        1,
    )
    assert figures.p50_s == pytest.approx(0.050) and figures.p99_s == pytest.approx(0.099)
    assert figures.max_s == pytest.approx(0.100) and figures.slowest_pid == 100
    assert figures.bounded_max_s == pytest.approx(1.0)  # 201: gone when looked, 1 s on


def test_percentiles_are_observed_values() -> None:
    assert lifetimes.percentile([], 50) is None
    assert lifetimes.percentile([3.0], 99) == 3.0
    assert lifetimes.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert lifetimes.percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0


def test_workers_name_the_pool_before_retired_kept_and_replaced() -> None:
    before = {"origin": contract.PRE_EXISTING, "forked_at": None, "seen_at": 5.0}
    rows = [
        died(1, exited=11.0, reaped=11.8, **before),
        died(2, exited=12.0, reaped=None, **before),
        child(3, **before),
        child(4, **before),
        child(5),  # a replacement, alive at the end
        died(6, exited=13.0, reaped=13.1),  # forked and gone
        child(7, depth=2, parent=5),  # a grandchild: not a worker
    ]
    pool = lifetimes.workers(rows)
    assert pool.slowest_retired_reap_s == pytest.approx(0.8)
    assert replace(pool, slowest_retired_reap_s=None) == lifetimes.Workers(
        pre_existing=4,
        retired=2,
        retired_reaped=1,
        slowest_retired_reap_s=None,
        kept=2,
        forked=2,
        forked_alive_at_end=1,
    )


def test_holders_name_who_holds_each_zombie_at_every_depth() -> None:
    rows = [
        died(1, exited=11.0, reaped=None, depth=2, parent=50),
        died(2, exited=11.0, reaped=None, depth=2, parent=50),
        died(3, exited=11.0, reaped=None, depth=2, parent=51, adopted_by=ROOT),
        died(4, exited=11.0, reaped=None),
        died(5, exited=11.0, reaped=11.5),
        died(6, exited=11.0, reaped=12.5, reaped_by=None),  # reaped by an unnamed adopter
    ]
    # PID 3's parent died and the root adopted it: its zombie is the root's child now.
    assert lifetimes.holders(rows, 12.0, ROOT) == [(ROOT, 1, 2), (50, 2, 2), (None, 1, 1)]
    assert lifetimes.holders(rows, 10.0, ROOT) == []


def test_the_cross_check_flags_a_sample_with_more_zombies_than_the_events() -> None:
    rows = [died(1, exited=11.0, reaped=12.0), died(2, exited=11.5, reaped=12.0)]
    assert lifetimes.cross_check(rows, [(10.0, 0), (11.2, 1), (11.6, 2), (12.5, 0)]) == []
    # a zombie made while the sample was still reading counts: within the window
    assert lifetimes.cross_check(rows, [(10.98, 1)]) == []
    assert lifetimes.cross_check(rows, [(10.0, 1), (11.2, 2), (12.5, 1)]) == [
        "the sample at 10.000 shows 1 zombies; the events, at most 0",
        "the sample at 11.200 shows 2 zombies; the events, at most 1",
        "the sample at 12.500 shows 1 zombies; the events, at most 0",
    ]
    assert lifetimes.cross_check([], [(1.0, 0)]) == []


def test_summary_figures_are_what_the_rows_show() -> None:
    rows = [died(1, exited=11.0, reaped=11.5), died(2, exited=12.0, reaped=None), child(3)]
    figures = lifetimes.summary_figures(rows, end=20.0, root=ROOT)
    assert (figures["forked"], figures["exited"], figures["reaped"]) == (3, 2, 1)
    assert (figures["peak_zombies"], figures["final_live"], figures["final_zombies"]) == (1, 1, 1)
    assert figures["final_zombie_holders"] == [{"pid": ROOT, "depth": 1, "zombies": 1}]
    assert figures["lifetimes"]["measured"] == 1 and figures["workers"]["forked"] == 3


def test_a_row_is_written_as_csv_writer_writes_its_cells_in_column_order() -> None:
    """csv_line lists the columns by hand (for speed): every cell in its column."""
    distinct = child(
        7,
        started=1.5,
        seen_at=2.25,
        forked_at=3.125,
        exited_at=4.0000005,
        exit_source=contract.EXIT_FROM_CONNECTOR,
        exit_code=3,
        reaped_at=5.5,
        reap_source=contract.REAP_FROM_KERNEL,
        reaped_by=8,
        adopted_by=9,
        adopted_at=6.75,
        command='sh -c "echo a, b"\r\nnext',
    )
    for row in (distinct, child(11), child(12, started=None, exit_signal="SIGKILL")):
        cells = [
            "" if value is None else f"{value:.6f}" if isinstance(value, float) else value
            for value in (getattr(row, name) for name in contract.EVENT_COLUMNS)
        ]
        written = io.StringIO()
        csv.writer(written).writerow(cells)
        assert row.csv_line() == written.getvalue()
        assert next(csv.DictReader(io.StringIO(contract.EVENT_HEADER + row.csv_line()))) == dict(
            zip(contract.EVENT_COLUMNS, map(str, cells), strict=True)
        )


def test_the_line_format_takes_the_columns_in_their_order() -> None:
    """The recorder passes a row's cells to event_line by position."""
    assert tuple(inspect.signature(contract.event_line).parameters) == contract.EVENT_COLUMNS


@pytest.mark.parametrize("found_in_proc", [False, True])
def test_a_childs_line_is_the_line_of_its_record(found_in_proc: bool) -> None:
    """The recorder's line for a child (its times on the monotonic clock) is the line of
    the record it stands for: each cell in its place (every value here is distinct)."""
    offset = 1_700_000_000_000_000_000  # unix - monotonic, ns
    known = Child(
        pid=7, parent=8, depth=2, command="srv, worker", origin=contract.PRE_EXISTING,
        seen_ns=1_000, forked_ns=2_000_000, exited_ns=3_000_500, exit_source="connector",
        exit_status=(signal.SIGKILL if found_in_proc else 3 << 8), reaped_ns=4_250_000,
        reap_source="kernel", reaped_by=9, adopted_by=10, adopted_ns=5_000_000,
        start_ticks=123 if found_in_proc else None,
    )  # fmt: skip
    record = ChildRecord(
        pid=7,
        started=boot_time() + 123 / CLOCK_TICKS if found_in_proc else (offset + 2_000_000) / 1e9,
        parent=8,
        depth=2,
        command="srv, worker",
        origin=contract.PRE_EXISTING,
        seen_at=(offset + 1_000) / 1e9,
        forked_at=(offset + 2_000_000) / 1e9,
        exited_at=(offset + 3_000_500) / 1e9,
        exit_source="connector",
        exit_code=None if found_in_proc else 3,
        exit_signal="SIGKILL" if found_in_proc else None,
        reaped_at=(offset + 4_250_000) / 1e9,
        reap_source="kernel",
        reaped_by=9,
        adopted_by=10,
        adopted_at=(offset + 5_000_000) / 1e9,
    )
    assert known.csv_line(offset) == record.csv_line()


def test_events_csv_reads_back_as_written(tmp_path: Path) -> None:
    rows = [
        died(1, exited=11.25, reaped=11.5, command='sh -c "a, b"\nx'),
        child(2, exit_signal="SIGKILL", exited_at=12.0, exit_source="connector", started=None),
    ]
    path = tmp_path / contract.EVENTS
    with path.open("w", newline="") as file:
        file.write(contract.EVENT_HEADER)
        file.writelines(row.csv_line() for row in rows)
        file.write("3,10.0,100")  # a row cut short by a crash
    read_back, notes = read(path)
    assert read_back == rows
    assert notes == ["events.csv row 3 left out: depth is missing"]


def test_a_file_without_the_columns_is_not_an_events_file(tmp_path: Path) -> None:
    path = tmp_path / contract.EVENTS
    path.write_text("time,zombies\n1,2\n")
    with pytest.raises(ValueError, match="lacks the columns pid"):
        read(path)


def test_the_summary_is_a_record_readers_can_check() -> None:
    summary = EventSummary(root_pid=7, started=1.0, sources={"forks": "connector"}, events_lost=0)
    assert EventSummary.checked(summary.to_json()) == (summary, [])
    record, notes = EventSummary.checked({"root_pid": 7, "started": 1.0, "events_lost": "x"})
    assert record.events_lost is None and notes
