"""The live feed and what the sampler hands it: the Zombies tab's figures, a disk that refuses
live.json said once (not every tick), and the peak that stops at the final sample."""

from __future__ import annotations

import json
from pathlib import Path

from diagnostics import contract
from diagnostics.contract import Sample
from diagnostics.events import TreeCounts
from loadtest import web
from loadtest.feed import LiveFeed
from loadtest.handoff import SamplerHandoff
from loadtest.live import PlainView
from loadtest.load import LoadShape
from loadtest.web import LIVE_FILE


def sample(zombies: int, at: float = 1.0) -> Sample:
    return Sample(
        time=at, elapsed=at, children=zombies, alive=0, zombies=zombies, descendant_zombies=0,
        fds=7, rss_bytes=None, cpu_percent=None, threads=None, sample_cost_ms=0.1,
    )  # fmt: skip


def rows_sources(folder: Path) -> dict[str, str]:
    return {
        row["figure"]: row["source"] for row in json.loads((folder / LIVE_FILE).read_text())["rows"]
    }


def test_a_feed_that_cannot_be_written_warns_once(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    record = contract.ScenarioRecord(name="s", started=0.0, cap=500, server_pid=1)
    feed = LiveFeed(
        LoadShape(users=1, rate=1.0, duration=1),
        not_a_folder,
        PlainView(),
        record,
        SamplerHandoff(),
        lambda: None,
    )
    warnings = [feed.publish() for _tick in range(3)]
    assert warnings[0] is not None and "writing live.json" in warnings[0]
    assert warnings[1:] == [None, None]
    assert record.warnings == []  # the feed hands the warning over; it writes no record


def test_the_tab_shows_the_peak_the_sampler_handed_over(tmp_path: Path) -> None:
    """The record gets the peak only when the scenario ends; the tab shows it while it runs."""
    record = contract.ScenarioRecord(
        name="s", started=0.0, cap=500, cap_enforcement="kernel", server_pid=42
    )
    sampled = SamplerHandoff()
    for zombies in (3, 9, 4):
        sampled.add(sample(zombies), interrupted_at=None)
    feed = LiveFeed(
        LoadShape(users=1, rate=1.0, duration=1),
        tmp_path,
        PlainView(),
        record,
        sampled,
        lambda: sample(4),
    )
    assert feed.publish() is None
    rows = {
        row["figure"]: row["value"]
        for row in json.loads((tmp_path / LIVE_FILE).read_text())["rows"]
    }
    assert (rows["zombies"], rows["peak zombies"]) == ("4", "9")
    assert (rows["server PID"], rows["zombie cap"]) == ("42", "500 (kernel)")
    assert rows["live children"] != "" and "sampled" in rows_sources(tmp_path)["zombies"]
    assert record.peak_zombies is None  # the feed wrote nothing into the record


def test_the_tab_shows_the_event_records_exact_counts_where_it_runs(tmp_path: Path) -> None:
    record = contract.ScenarioRecord(name="s", started=0.0, cap=500, server_pid=42)
    counts = TreeCounts(
        live=5, zombies=7, deeper_live=2, deeper_zombies=3, peak_zombies=11, forks=40,
        exits=35, reaps=28, last_exit_ns=0, last_change_ns=0,
    )  # fmt: skip
    sampled = SamplerHandoff()
    sampled.add(sample(2), interrupted_at=None)
    feed = LiveFeed(
        LoadShape(users=1, rate=1.0, duration=1),
        tmp_path,
        PlainView(),
        record,
        sampled,
        lambda: sample(2),
        lambda: counts,
    )
    assert feed.publish() is None
    table = json.loads((tmp_path / LIVE_FILE).read_text())["rows"]
    rows = {row["figure"]: (row["value"], row["source"]) for row in table}
    exact = "kernel events (exact)"
    assert rows["live children"] == ("3", exact)
    assert rows["zombies"] == ("7", exact)
    assert rows["zombies deeper down"] == ("3", exact)
    assert rows["peak zombies"] == ("11", exact)
    assert rows["children forked / exited / reaped"] == ("40 / 35 / 28", exact)
    assert "sampled" not in rows["verdict so far"][0]


def test_the_peak_stops_at_the_final_sample_and_the_interrupt_keeps_its_last() -> None:
    sampled = SamplerHandoff()
    sampled.add(sample(5, at=1.0), interrupted_at=None)
    sampled.add(sample(7, at=2.0), interrupted_at=2.5)
    sampled.add(sample(8, at=3.0), interrupted_at=2.5)  # taken during the clean-up
    assert sampled.before_interrupt is not None and sampled.before_interrupt.time == 2.0
    sampled.close()
    sampled.add(sample(50, at=4.0), interrupted_at=2.5)  # the server's shutdown
    assert sampled.peak == 8


def test_the_verdict_so_far_says_sampled_and_at_least_where_it_rests_on_samples() -> None:
    sampled = web.TreeNow(alive=1, zombies=3, deeper=0, peak=5, exact=False)
    exact = web.TreeNow(alive=1, zombies=3, deeper=0, peak=5, exact=True)
    assert web.live_verdict(sampled, 100, 500) == (
        "3 zombies now (sampled), at least 5 at once so far; 100 requests"
    )
    assert (
        web.live_verdict(exact, 100, 500) == "3 zombies now, at most 5 at once so far; 100 requests"
    )
    none = web.TreeNow(alive=0, zombies=0, deeper=0, peak=0, exact=False)
    assert web.live_verdict(none, 100, 500) == "no zombie so far (sampled) after 100 requests"
