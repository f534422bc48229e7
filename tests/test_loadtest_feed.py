"""The Zombies tab's feed: a disk that refuses live.json is said once, not every tick."""

from __future__ import annotations

from pathlib import Path

from diagnostics import contract
from loadtest.feed import LiveFeed
from loadtest.handoff import SamplerHandoff
from loadtest.live import PlainView
from loadtest.load import LoadShape


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
