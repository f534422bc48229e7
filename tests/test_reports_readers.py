"""Reading what a crashed or interrupted run leaves behind: never raise, say what was lost."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diagnostics.contract import SAMPLE_COLUMNS, SAMPLES, SCENARIO, ScenarioRecord
from reports.files import FileState, Table, read_json_object, read_table
from reports.locust import history_from_table, totals_from_history, totals_from_stats
from reports.rundir import load_run, load_scenario
from reports.series import envelope, windowed_rate
from tests.reports_fixtures import HISTORY_HEADER, STATS_HEADER, write_csv, write_json

# Rows as Locust 2 wrote them against a local http.server (Aggregated has an empty Type).
STATS_ROWS = [
    ["GET", "/", 81, 0, 3, 3.6, 1.1, 26.4, 605.0, 27.5, 0.0, 3, 3, 4, 4, 5, 6, 12, 26, 26, 26, 26],
    ["", "Aggregated", 145, 64, 3, 4.0, 1.0, 28.5, 485.8, 49.2, 21.7, 3, 4, 4, 4, 5, 12, 27, 28,
     29, 29, 29],
]  # fmt: skip
HISTORY_ROWS = [
    [1795731253, 0, "", "Aggregated", "0.000000", "0.000000", *["N/A"] * 11, 0, 0, 0, 0.0, 0, 0,
     0],
    [1795731254, 5, "GET", "/", "0.000000", "0.000000", *[0] * 11, 31, 0, 4, 5.1, 2.0, 26.4,
     605.0],
    [1795731254, 5, "", "Aggregated", "0.000000", "0.000000", *[0] * 11, 50, 19, 4, 6.5, 2.0,
     28.5, 502.4],
    [1795731256, 5, "", "Aggregated", "30.000000", "13.000000", 3, 3, 4, 4, 4, 5, 5, 6, 6, 6, 6,
     145, 64, 3, 4.0, 1.0, 28.5, 485.8],
]  # fmt: skip


def test_half_written_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    path.write_text("time,zombies\n1.0,5\n2.0,6\n3.0,1", encoding="utf-8")  # cut mid-line
    read = read_table(path)
    assert read.state is FileState.OK
    assert read.value is not None
    assert read.value.numbers("zombies").tolist() == [5.0, 6.0]
    assert "dropped 1 incomplete row" in read.detail


def test_rows_with_the_wrong_field_count_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    path.write_bytes(b"time,zombies\n1.0,5\n2.0\n3.0,7,9\n\x00\x00\n4.0,8\n")
    read = read_table(path)
    assert read.value is not None
    assert read.value.numbers("time").tolist() == [1.0, 4.0]
    assert read.value.dropped_rows == 2


def test_blank_cells_and_na_read_as_not_measured(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n,N/A\n1,2\n", encoding="utf-8")
    table = read_table(path).value
    assert table is not None
    assert np.isnan(table.numbers("a")[0]) and np.isnan(table.numbers("b")[0])
    assert np.isnan(table.numbers("no such column")).all()


@pytest.mark.parametrize(
    ("content", "state"),
    [(None, FileState.MISSING), (b"", FileState.EMPTY), (b"  \n", FileState.EMPTY)],
)
def test_missing_and_empty_files(tmp_path: Path, content: bytes | None, state: FileState) -> None:
    path = tmp_path / "f.csv"
    if content is not None:
        path.write_bytes(content)
    assert read_table(path).state is state
    assert read_json_object(path).state is state


def test_header_only_csv_is_a_table_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "locust_exceptions.csv"
    path.write_text("Count,Message,Traceback,Nodes\n", encoding="utf-8")
    read = read_table(path)
    assert read.state is FileState.OK and read.value is not None and len(read.value) == 0


def test_half_written_json_and_non_objects_are_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text('{"name": "no-reaper", "capped": tr', encoding="utf-8")
    read = read_json_object(path)
    assert read.state is FileState.UNREADABLE and "not valid JSON" in read.detail
    path.write_text("[1, 2]", encoding="utf-8")
    assert read_json_object(path).state is FileState.UNREADABLE


def test_wrongly_typed_records_are_read_field_by_field_with_notes(tmp_path: Path) -> None:
    write_json(tmp_path / "run.json", {"id": "r", "kind": "loadtest", "scenarios": ["s"]})
    (tmp_path / "s").mkdir()
    scenario_json = {"name": "s", "strategy": "none", "started": "noon", "capped": "yes"}
    write_json(tmp_path / "s" / "scenario.json", scenario_json)
    run = load_run(tmp_path)
    assert run.recorded and run.id == "r" and run.record.parameters == {}
    assert run.notes == [
        "run.json: started is missing (read as unknown)",
        "run.json: parameters is missing (read as {})",
        "run.json: machine is missing (read as {})",
    ]
    [scenario] = run.scenarios
    assert scenario.recorded and scenario.record.strategy == "none"
    assert scenario.record.capped is False and math.isnan(scenario.capped_t())
    assert scenario.notes == [
        "scenario.json: started should be a number, not a string (read as unknown)",
        "scenario.json: capped should be a boolean, not a string (read as false)",
    ]


def test_a_directory_where_a_file_should_be_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "samples.csv").mkdir()
    assert read_table(tmp_path / "samples.csv").state is FileState.UNREADABLE


def read_back(path: Path, header: list[str], rows: list[list[Any]]) -> Table:
    """`rows` written as a CSV file, then read as reports reads Locust's."""
    write_csv(path, header, rows)
    table = read_table(path).value
    assert table is not None
    return table


def test_locust_totals_come_from_the_aggregated_row(tmp_path: Path) -> None:
    totals = totals_from_stats(read_back(tmp_path / "stats.csv", STATS_HEADER, STATS_ROWS))
    assert totals is not None
    assert (totals.requests, totals.failures) == (145, 64)
    assert (totals.p50_ms, totals.p95_ms, totals.p99_ms) == (3, 12, 28)
    assert totals.rps == pytest.approx(49.2)


def test_locust_history_keeps_aggregated_rows_and_recovers_totals(tmp_path: Path) -> None:
    history = history_from_table(read_back(tmp_path / "history.csv", HISTORY_HEADER, HISTORY_ROWS))
    assert history is not None
    assert history.total_requests.tolist() == [0, 50, 145]
    assert math.isnan(history.p50_ms[0])  # Locust writes N/A before the first response
    totals = totals_from_history(history)
    assert (totals.requests, totals.failures) == (145, 64)
    assert totals.rps == pytest.approx(145 / 3)
    assert totals.p95_ms is None


def test_windowed_rate_reads_a_steady_load_from_its_running_total() -> None:
    t = np.arange(0, 5, 0.1)
    total = np.floor(t * 100)  # 100 per second, counted in whole requests
    per_s = windowed_rate(t, total, 1.0)
    assert math.isnan(per_s[0])
    assert np.all(np.abs(per_s[10:] - 100) <= 2)


def test_envelope_keeps_every_peak() -> None:
    t = np.arange(12_000) * 0.05
    values = np.zeros(t.size)
    values[7_777] = 8
    middle, low, high, mean = envelope(t, values, 600)
    assert middle.size == low.size == high.size == mean.size == 600
    assert high.max() == 8 and low.min() == 0
    assert np.all(np.diff(middle) > 0)


def test_a_group_of_settings_reads_as_its_given_values() -> None:
    from reports.table import NOT_MEASURED, parameter

    given = {"paths": [], "status": 200, "body": None, "body_check": True}
    assert parameter(given) == "(status 200, body_check True)"
    assert parameter(["python3", "-m", "http.server"]) == "python3 -m http.server"
    assert parameter(None) == NOT_MEASURED


def test_every_numeric_column_of_samples_csv_is_read(tmp_path: Path) -> None:
    """A column a newer sampler adds reaches reports without a list to update."""
    header = [*SAMPLE_COLUMNS, "new_figure"]
    rows = [[1000.0 + i, i, 1, 1, 0, 0, 5, 1, 0.0, 1, 0.1, "", 7 * i] for i in range(3)]
    (tmp_path / "s").mkdir()
    write_csv(tmp_path / "s" / SAMPLES, header, rows)
    scenario = load_scenario(tmp_path, "s", watch=True)
    assert scenario.samples is not None
    assert list(scenario.samples["new_figure"]) == [0.0, 7.0, 14.0]


def test_samples_end_at_the_harness_final_sample(tmp_path: Path) -> None:
    """The server's shutdown (after the final sample) is the harness's doing: not plotted."""
    rows = [
        [1000.0 + i, i, z, 0, z, 0, 5, 1, 0.0, 1, 0.1, 0] for i, z in enumerate([0, 0, 0, 2, 2])
    ]
    (tmp_path / "s").mkdir()
    write_csv(tmp_path / "s" / SAMPLES, SAMPLE_COLUMNS, rows)
    record = ScenarioRecord(name="s", started=1000.0, final_sample={"time": 1002.0, "zombies": 0})
    write_json(tmp_path / "s" / SCENARIO, record.to_json())
    scenario = load_scenario(tmp_path, "s", watch=False)
    assert scenario.samples is not None
    assert list(scenario.samples["zombies"]) == [0.0, 0.0, 0.0]
    assert list(scenario.samples.t) == [0.0, 1.0, 2.0]
