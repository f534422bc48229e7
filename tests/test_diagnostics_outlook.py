"""doctor's PID-limit line (diagnostics.outlook): the limit a parent's tree reaches first,
checked against a pids cgroup whose limit the test sets and fills with known zombies."""

from __future__ import annotations

import math

import pytest

from diagnostics import doctor, outlook
from diagnostics.limits import Limit
from tests.cgroup_helpers import MakeCgroup, make_cgroup, needs_cgroup, start_in_cgroup
from tests.diag_helpers import end_by_stdin

__all__ = ["make_cgroup"]  # the fixture, used by name


def test_the_time_left_is_the_room_left_over_the_zombies_growth() -> None:
    limit = Limit("pids.max", 2_048, 1_048, "cgroup /app", "test")
    ahead = outlook.Outlook(limit, rate_per_s=26 / 300, watch_s=300)
    assert ahead.seconds_left == pytest.approx(1_000 / (26 / 300))
    assert ahead.sentence() == (
        "the tightest is pids.max 2,048 of cgroup /app: 1,048 used, 1,000 left;"
        " at +0.1 zombies/s (sampled over 300 s) it is reached in 3.2 h"
    )
    assert ahead.to_json()["seconds_left"] == round(1_000 / (26 / 300), 1)
    still = outlook.Outlook(limit, rate_per_s=0.0, watch_s=2)
    assert still.seconds_left == math.inf and still.to_json()["seconds_left"] is None
    assert still.sentence().endswith("the zombies did not grow over 2 s")
    unwatched = outlook.Outlook(limit, rate_per_s=None, watch_s=0)
    assert unwatched.seconds_left is None
    assert "--watch" in unwatched.sentence()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (7.43, "7.4 s"),
        (119, "119.0 s"),
        (720, "12.0 min"),
        (6.1 * 3600, "6.1 h"),
        (3 * 86400, "3.0 d"),
    ],
)
def test_durations_read_as_a_person_reads_a_wait(seconds: float, text: str) -> None:
    assert outlook.duration(seconds) == text


@needs_cgroup
def test_doctor_names_the_cgroup_limit_its_zombies_count_against(make_cgroup: MakeCgroup) -> None:
    group = make_cgroup("outlook", 300)
    holder, refused = start_in_cgroup(group, zombies=40)
    try:
        assert refused == 0
        report = doctor.examine(holder.pid, 0)
        used = group.current()
        assert used is not None
    finally:
        end_by_stdin(holder)
    assert report["zombies"] == 40
    figure = report["pid_limit"]
    assert figure["kind"] == "pids.max" and figure["value"] == 300
    assert figure["scope"].endswith(group.path.name)
    assert figure["used"] == used  # the holder and its 40 zombies
    assert figure["seconds_left"] is None  # no watch, no pace
    assert f"pids.max 300 of {figure['scope']}: {used} used, {300 - used} left" in (
        doctor.render(report)
    )
