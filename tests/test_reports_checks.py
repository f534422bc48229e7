"""Cross-checks between sampler, server counters and Locust: mismatches become warnings."""

from __future__ import annotations

from reports.checks import Counts, cross_checks


def texts(counts: Counts) -> list[tuple[bool, str]]:
    return [(check.ok, check.text) for check in cross_checks(counts)]


def test_no_reaper_zombies_equal_forked_minus_reaped() -> None:
    checks = texts(Counts(strategy="none", final_zombies=2000, forked=2000, reaped=0))
    assert checks == [(True, "final zombies 2000 = forked 2000 - reaped 0")]


def test_no_reaper_mismatch_is_explained() -> None:
    [(ok, text)] = texts(Counts(strategy="none", final_zombies=1998, forked=2000, reaped=0))
    assert not ok
    assert text.startswith("final zombies 1998 != forked 2000 - reaped 0 = 2000")


def test_reaping_strategy_must_end_with_no_zombies() -> None:
    for strategy in ("loop", "ignore", "wakeup"):
        assert texts(Counts(strategy=strategy, final_zombies=0)) == [
            (True, "no zombies left at the end")
        ]
        [(ok, text)] = texts(Counts(strategy=strategy, final_zombies=3))
        assert not ok and f"strategy {strategy}" in text


def test_reaped_more_than_forked_is_flagged() -> None:
    [(ok, text)] = texts(Counts(forked=10, reaped=12))
    assert not ok and "reaped 12" in text


def test_requests_and_accepted_may_differ_by_requests_in_flight() -> None:
    [(ok, text)] = texts(Counts(requests=2000, accepted=2012, users=20))
    assert ok and "12 in flight" in text
    [(ok, text)] = texts(Counts(requests=2000, accepted=1900, users=20))
    assert not ok and "100 failed before the server accepted them" in text


def test_unmeasured_figures_skip_their_checks() -> None:
    assert texts(Counts(strategy="none", final_zombies=5)) == []
    assert texts(Counts(strategy="loop")) == []
    assert texts(Counts(requests=10)) == []
