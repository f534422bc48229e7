"""What the harness reads from Locust's CSV files while and after it runs (loadtest/load.py).

The files are written here in the column layout of a real run (`--csv --csv-full-history`,
copied from reports/runs/*/no-reaper/): a per-endpoint row beside each Aggregated row, "N/A"
percentiles before the first request, and the stats file's Aggregated row written twice.
The request count's own source is the harness's 10 Hz timeline; Locust's files stand in
only where there is none.
"""

from __future__ import annotations

import os
from pathlib import Path

from diagnostics import contract
from loadtest.load import (
    FailureReader,
    LoadProgress,
    failure_reasons,
    read_totals,
)

STATS_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
HISTORY_HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)
FAILURES_HEADER = "Method,Name,Error,Occurrences,First Seen,Last Seen"
HISTORY = contract.Source.LOCUST_HISTORY


def history_row(stamp: int, users: int, name: str, rps: float, total: int, failed: int) -> str:
    kind = "" if name == "Aggregated" else "GET"
    return (
        f"{stamp},{users},{kind},{name},{rps:.6f},0.000000,2,2,2,2,2,3,3,4,6,6,6,"
        f"{total},{failed},2,1.83,0.86,19.8,15.4"
    )


def write(folder: Path, name: str, header: str, *rows: str) -> None:
    (folder / name).write_text("\n".join([header, *rows]) + "\n")


def write_history(folder: Path) -> None:
    write(
        folder,
        contract.HISTORY,
        HISTORY_HEADER,
        "1795788008,0,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,"
        "N/A,0,0,0,0.0,0,0,0",
        history_row(1795788009, 20, "/<name>", 0.0, 99, 1),
        history_row(1795788009, 20, "Aggregated", 50.0, 99, 1),
        history_row(1795788015, 20, "/<name>", 96.4, 700, 3),
        history_row(1795788015, 20, "Aggregated", 96.4, 700, 3),
    )


def test_history_totals_are_the_newest_row_at_the_whole_runs_rate(tmp_path: Path) -> None:
    write_history(tmp_path)
    # 700 requests over the 7 s the history spans; its last window said 96.4/s.
    assert read_totals(tmp_path) == (LoadProgress(requests=700, failures=3, rps=100.0), HISTORY)


def test_no_history_yet_is_no_figures_not_zeros(tmp_path: Path) -> None:
    assert read_totals(tmp_path) == (LoadProgress(None, None, None), None)
    write(tmp_path, contract.HISTORY, HISTORY_HEADER)  # Locust has written its header only
    assert read_totals(tmp_path) == (LoadProgress(None, None, None), None)


def test_final_totals_come_from_the_stats_aggregated_row(tmp_path: Path) -> None:
    write_history(tmp_path)
    aggregated = ",Aggregated,766,5,2,1.82,0.87,19.8,15.4,99.48,0.0,2,2,2,2,2,3,3,4,20,20,20"
    write(
        tmp_path,
        contract.STATS,
        STATS_HEADER,
        "GET,/<name>,766,5,2,1.82,0.87,19.8,15.4,99.48,0.0,2,2,2,2,2,3,3,4,20,20,20",
        aggregated,
        aggregated,
    )
    stats = contract.Source.LOCUST_STATS
    assert read_totals(tmp_path) == (LoadProgress(requests=766, failures=5, rps=99.48), stats)


def test_a_run_cut_short_before_the_stats_file_falls_back_to_the_history(tmp_path: Path) -> None:
    write_history(tmp_path)
    assert read_totals(tmp_path) == (LoadProgress(requests=700, failures=3, rps=100.0), HISTORY)
    write(tmp_path, contract.STATS, STATS_HEADER)  # header written, no Aggregated row
    assert read_totals(tmp_path) == (LoadProgress(requests=700, failures=3, rps=100.0), HISTORY)


def write_timeline(folder: Path) -> None:
    """Ten rows a second; requests stop growing at 1000.5 (the load's end), then hold."""
    rows = [f"{1000 + i / 10:.3f},{min(i, 5) * 20},{1 if i >= 3 else 0}" for i in range(11)]
    write(folder, contract.REQUESTS, ",".join(contract.REQUEST_COLUMNS), *rows)


def test_the_timeline_is_the_count_whatever_locusts_files_say(tmp_path: Path) -> None:
    # A Locust killed between two writes of its stats: they lag; the timeline does not.
    write_history(tmp_path)
    write_timeline(tmp_path)
    totals, source = read_totals(tmp_path)
    assert source == contract.Source.TIMELINE
    # 100 requests over the 0.5 s in which they completed, not over the held tail.
    assert totals == LoadProgress(requests=100, failures=1, rps=200.0)


def test_the_timeline_is_read_as_of_a_moment(tmp_path: Path) -> None:
    # An interrupt at 1000.25: the rows after it describe the clean-up, not the run.
    write_timeline(tmp_path)
    totals, _source = read_totals(tmp_path, until=1000.25)
    assert (totals.requests, totals.failures) == (40, 0)
    assert read_totals(tmp_path, until=999.0) == (LoadProgress(None, None, None), None)


def test_failure_reasons_add_up_over_endpoints_most_frequent_first(tmp_path: Path) -> None:
    write(
        tmp_path,
        contract.FAILURES,
        FAILURES_HEADER,
        "GET,/a,\"CatchResponseError('status 404 (expected 200)')\",2,1795788009,1795788010",
        "GET,/a,\"ConnectionResetError(104, 'Connection reset by peer')\",3,1795788009,1795788011",
        "GET,/b,\"CatchResponseError('status 404 (expected 200)')\",4,1795788010,1795788012",
    )
    assert failure_reasons(tmp_path) == [
        ("status 404 (expected 200)", 6),
        ("ConnectionResetError(104, 'Connection reset by peer')", 3),
    ]


def test_no_failures_file_or_a_header_only_one_is_no_reasons(tmp_path: Path) -> None:
    assert failure_reasons(tmp_path) == []
    write(tmp_path, contract.FAILURES, FAILURES_HEADER)
    assert failure_reasons(tmp_path) == []


def test_the_live_view_rereads_the_failures_file_only_when_it_changed(tmp_path: Path) -> None:
    reader = FailureReader(tmp_path)
    assert reader.top_failure() is None  # no file yet
    write(tmp_path, contract.FAILURES, FAILURES_HEADER)
    assert reader.top_failure() is None  # nothing failed yet
    path = tmp_path / contract.FAILURES
    write(
        tmp_path, contract.FAILURES, FAILURES_HEADER, "GET,/a,\"CatchResponseError('late')\",2,1,2"
    )
    assert reader.top_failure() == "late (x2)"
    stamp = path.stat()
    # Same size and mtime as what was parsed: the cached answer stands (no re-parse).
    write(
        tmp_path, contract.FAILURES, FAILURES_HEADER, "GET,/a,\"CatchResponseError('xxxx')\",2,1,2"
    )
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert reader.top_failure() == "late (x2)"
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
    assert reader.top_failure() == "xxxx (x2)"
