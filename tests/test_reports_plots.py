"""What the figures choose to draw: the requests reference, the exact peak, the timeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.text import Annotation

from diagnostics.contract import REQUEST_COLUMNS, REQUESTS, ScenarioRecord
from reports.plots import (
    END_LABEL_POINTS,
    _end_labels,
    _exact_peak,
    _figure,
    _reference,
    completed_requests,
    counted,
)
from reports.rundir import (
    Completed,
    Samples,
    Scenario,
    load_scenario,
)
from tests.reports_fixtures import write_csv, write_json

T = np.arange(0, 10, 0.1)


def scenario(zombies: np.ndarray, requests: np.ndarray) -> Scenario:
    samples = Samples(T, {"zombies": zombies, "alive": np.zeros_like(T)})
    return Scenario(
        "s", None, (), samples=samples, completed=Completed(T, requests, np.zeros_like(T))
    )


def test_requests_line_is_drawn_only_beside_a_leak() -> None:
    def reference(zombies: np.ndarray, requests: np.ndarray) -> object:
        drawn = scenario(zombies, requests)
        counts = counted(drawn)
        assert counts is not None and not counts.exact
        return _reference(drawn, counts)

    requests = np.floor(T * 100)
    assert reference(requests.copy(), requests) is not None  # one per request
    assert reference(np.where(T > 5, 2.0, 0.0), requests) is None  # a reaper
    assert reference(np.floor(requests * 0.3), requests) is None  # partial leak


def test_exact_peak_is_shown_only_when_every_child_was_reaped() -> None:
    def ended_with(zombies: int) -> ScenarioRecord:
        return ScenarioRecord(name="s", started=0.0, final_sample={"zombies": zombies})

    reaped = Scenario("s", None, (), server={"peak_unreaped": 9}, record=ended_with(0))
    assert _exact_peak(reaped) == 9
    leaked = Scenario("s", None, (), server={"peak_unreaped": 900}, record=ended_with(900))
    assert _exact_peak(leaked) is None
    assert _exact_peak(Scenario("s", None, (), record=ended_with(0))) is None


def test_the_request_timeline_is_read_on_the_samples_clock(tmp_path: Path) -> None:
    folder = tmp_path / "no-reaper"
    folder.mkdir()
    write_json(folder / "scenario.json", ScenarioRecord(name="no-reaper", started=1000.0).to_json())
    write_csv(
        folder / REQUESTS, list(REQUEST_COLUMNS), [[1000.5, 0, 0], [1000.6, 7, 1], [1000.7, 15, 1]]
    )
    read = load_scenario(tmp_path, "no-reaper", watch=False)
    series = completed_requests(read)
    assert series is not None
    assert np.allclose(series[0], [0.5, 0.6, 0.7]) and series[1].tolist() == [0, 7, 15]
    assert read.completed is not None and read.completed.failures.tolist() == [0, 1, 1]


def test_end_labels_of_lines_that_end_together_are_moved_apart() -> None:
    """721 and 719 on an axis up to 800 would print one over the other."""
    ax = _figure(4.0).subplots()
    ax.set_ylim(0, 800)
    ends = {"721": 721.0, "719": 719.0, "100": 100.0}
    _end_labels(ax, [(T, np.full_like(T, value), "black") for value in ends.values()])
    labels = [label for label in ax.texts if isinstance(label, Annotation)]
    lifts = {label.get_text(): label.xyann[1] for label in labels}
    points_per_unit = ax.bbox.height * 72 / ax.figure.dpi / 800
    at = {text: ends[text] * points_per_unit + lift for text, lift in lifts.items()}
    assert at["721"] - at["719"] >= END_LABEL_POINTS
    assert lifts["100"] == lifts["719"] == 0  # clear of the others: left where its line ends
