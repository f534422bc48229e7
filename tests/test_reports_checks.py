"""Cross-checks between sampler, server counters and Locust: mismatches become warnings."""

from __future__ import annotations

from typing import Any

import pytest

from diagnostics.contract import ScenarioRecord
from reports.checks import Counts, cross_checks, scenario_checks
from server.reapers import STRATEGIES


def ours(strategy: str, **figures: Any) -> Counts:
    """Counts of our server under ``strategy``, with its promise as the harness records it."""
    return Counts(strategy=strategy, reaps_all=STRATEGIES[strategy].reaps_all, **figures)


def texts(counts: Counts) -> list[tuple[bool, str]]:
    return [(check.ok, check.text) for check in cross_checks(counts)]


def test_no_reaper_zombies_equal_forked_minus_reaped() -> None:
    checks = texts(ours("none", final_zombies=2000, final_alive=0, forked=2000, reaped=0))
    assert checks == [(True, "final zombies 2000 = forked 2000 - reaped 0 - still running 0")]


def test_no_reaper_mismatch_is_explained() -> None:
    counts = ours("none", final_zombies=1998, final_alive=0, forked=2000, reaped=0)
    [(ok, text)] = texts(counts)
    assert not ok
    assert text.startswith("final zombies 1998 != forked 2000 - reaped 0 - still running 0 = 2000")


@pytest.mark.parametrize("strategy", ["none", "single", "loop", "wakeup"])
def test_the_identity_counts_children_still_running(strategy: str) -> None:
    counts = ours(strategy, final_zombies=0, final_alive=3, forked=50, reaped=47)
    assert (True, "final zombies 0 = forked 50 - reaped 47 - still running 3") in texts(counts)
    single = ours("single", final_zombies=7, final_alive=2, forked=50, reaped=41)
    assert texts(single) == [(True, "final zombies 7 = forked 50 - reaped 41 - still running 2")]


def test_no_identity_where_the_kernel_reaps() -> None:
    counts = ours("ignore", final_zombies=0, final_alive=0, forked=50, reaped=None)
    assert texts(counts) == [(True, "no zombies left at the end")]


def test_reaping_strategy_must_end_with_no_zombies() -> None:
    for strategy in ("loop", "ignore", "wakeup"):
        assert texts(ours(strategy, final_zombies=0)) == [(True, "no zombies left at the end")]
        [(ok, text)] = texts(ours(strategy, final_zombies=3))
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
    assert texts(ours("none", final_zombies=5)) == []
    assert texts(Counts(strategy="loop")) == []
    assert texts(Counts(requests=10)) == []


def as_pid1(strategy: str, **figures: Any) -> Counts:
    """Counts of our server run as PID 1 of its PID namespace, without an init."""
    return Counts(
        strategy=strategy, reaps_all=STRATEGIES[strategy].reaps_all, server_pid1=True, **figures
    )


def test_as_pid1_the_orphans_it_is_handed_are_not_its_own_children() -> None:
    # The application that waits for its own children only: each request's orphan stays.
    own = as_pid1("own", final_zombies=721, final_alive=0, forked=721, reaped=721)
    assert texts(own) == [
        (
            True,
            "final zombies 721 + still running 0 >= forked 721 - reaped 721: as PID 1 the"
            " server is also handed orphans it did not fork, 721 of them here",
        ),
        (
            True,
            "none of its own children left unreaped (forked 721, reaped 721); the 721 zombies"
            " at the end are orphans it was handed as PID 1",
        ),
    ]
    # A server that never waits holds both: its children and the orphans.
    [(ok, text)] = texts(as_pid1("none", final_zombies=40, final_alive=0, forked=20, reaped=0))
    assert ok and text.endswith("20 of them here")


def test_as_pid1_reaping_more_than_it_forked_is_no_fault() -> None:
    """waitpid(-1) as PID 1 reaps the orphans too: reaped passes forked."""
    checks = texts(as_pid1("loop", final_zombies=0, final_alive=0, forked=3, reaped=6))
    assert checks[0] == (
        True,
        "reaped 6 > forked 3: as PID 1 the server also reaped orphans it was handed, which it"
        " did not fork (final zombies 0 + still running 0)",
    )
    assert all(ok for ok, _text in checks)
    # Not as PID 1, the same figures are a fault.
    assert not all(ok for ok, _text in texts(ours("loop", forked=3, reaped=6)))


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (
            {"final_zombies": 10, "final_alive": 0, "forked": 50, "reaped": 45},
            (False, "at least 5 of its own children left as zombies"),
        ),
        (
            {"final_zombies": 10, "final_alive": 3, "forked": 50, "reaped": 48},
            (True, "forked 50 - reaped 48 = 2 of its own children not reaped yet, no more"),
        ),
    ],
)
def test_as_pid1_a_reaper_must_still_reap_its_own_children(
    figures: dict[str, int], expected: tuple[bool, str]
) -> None:
    checks = texts(as_pid1("own", **figures))
    assert any(ok == expected[0] and text.startswith(expected[1]) for ok, text in checks), checks


def test_as_pid1_fewer_held_than_unreaped_is_a_mismatch() -> None:
    [(ok, text), _] = texts(as_pid1("own", final_zombies=1, final_alive=0, forked=5, reaped=2))
    assert not ok and text.startswith("final zombies 1 + still running 0 < forked 5 - reaped 2 = 3")


def test_behind_an_init_the_servers_own_sample_is_compared() -> None:
    """The sampler's target is the init (PID 1): its final sample counts the init's
    children; the identity is the server's, from its own final sample."""
    record = ScenarioRecord(
        name="pid1-tini-no-reaper",
        strategy="none",
        reaps_all=False,
        started=0.0,
        pid1={"init": "tini"},
        final_sample={"zombies": 0, "alive": 1},
        final_server_sample={"zombies": 5, "alive": 0},
        server_counters={"forked": 5, "reaped": 0},
    )
    assert [(c.ok, c.text) for c in scenario_checks(record)] == [
        (True, "final zombies 5 = forked 5 - reaped 0 - still running 0")
    ]
    # Without the server's own sample, nothing is compared rather than the init's figures.
    record.final_server_sample = None
    assert scenario_checks(record) == []


def test_no_check_compares_the_two_sides_of_an_interrupt() -> None:
    # The last sample before Ctrl-C (1 zombie between exit and reap, 20 children at work)
    # against counters read after the server's shutdown: every such check would be false.
    counts = ours(
        "loop", final_zombies=1, final_alive=1, forked=344, reaped=344, accepted=344,
        requests=300, users=20, interrupted=True,
    )  # fmt: skip
    assert texts(counts) == []
    broken = ours("loop", forked=10, reaped=12, interrupted=True)  # one moment: still checked
    assert texts(broken) == [(False, "server reaped 12 children but forked only 10")]


def test_the_servers_failed_forks_are_the_ones_its_cgroup_refused() -> None:
    assert texts(Counts(fork_failures=61, forks_refused=61)) == [
        (True, "server's failed forks 61 = forks its cgroup refused 61")
    ]
    ((ok, text),) = texts(Counts(fork_failures=93, forks_refused=61))
    assert not ok and text.endswith(
        "32 failed elsewhere than at the cap (the machine short of PIDs or memory?)"
    )
    assert texts(Counts(fork_failures=5)) == []  # no cgroup: nothing to compare
