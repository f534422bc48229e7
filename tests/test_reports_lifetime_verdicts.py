"""Verdicts judged from every child's life (reports/lifetime_verdicts.py): what each kind
of server the issue found misjudged by samples is called when the event record is there."""

from __future__ import annotations

from reports.lifetime_verdicts import (
    EventEvidence,
    Holder,
    Pool,
    pool_verdict,
    zombie_verdict,
)


def held(
    zombies: int, pid: int = 4242, depth: int = 0, command: str = "python3 server.py"
) -> tuple[Holder, ...]:
    return (Holder(pid, zombies, depth, command),)


def test_a_reaper_reaps_every_child_and_says_the_slowest() -> None:
    evidence = EventEvidence(forked=1963, exited=1963, measured=1963, max_s=0.0021, p50_s=0.0001)
    assert zombie_verdict(evidence) == (
        "reaps every child: 1,963 exited, all reaped, the slowest after 2.1 ms"
    )


def test_a_timer_reaper_is_bounded_by_its_poll_and_says_its_median() -> None:
    evidence = EventEvidence(forked=400, exited=400, measured=400, max_s=0.49, p50_s=0.25)
    assert zombie_verdict(evidence) == (
        "reaps every child: 400 exited, all reaped, the slowest after 0.49 s, half within 0.25 s"
    )


def test_children_reaped_too_soon_to_be_timed_are_said_with_their_bound() -> None:
    evidence = EventEvidence(
        forked=100, exited=100, measured=97, bounded=3, bounded_max_s=0.0004, max_s=0.002
    )
    assert zombie_verdict(evidence).endswith(
        "the slowest after 2 ms (3 more reaped too soon to be timed within 0.4 ms)"
    )


def test_a_server_that_never_reaps() -> None:
    evidence = EventEvidence(forked=352, exited=352, never_reaped=352, holders=held(352))
    assert zombie_verdict(evidence) == (
        "never reaps: all 352 children that exited left as zombies, held by PID 4242"
        " (python3 server.py), the process the harness started"
    )


def test_a_share_never_reaped_names_the_cause_the_holder_and_the_others() -> None:
    evidence = EventEvidence(
        forked=369, exited=369, measured=241, never_reaped=128, max_s=1.3, p50_s=0.66,
        holders=held(128),
    )  # fmt: skip
    assert zombie_verdict(evidence, "signals coalesced") == (
        "signals coalesced: leaves zombies: 128 of the 369 children that exited never reaped"
        " (35%), held by PID 4242 (python3 server.py), the process the harness started;"
        " the others reaped, the slowest after 1.3 s, half within 0.66 s"
    )


def test_zombies_a_level_down_are_counted_with_the_pid_that_holds_them() -> None:
    evidence = EventEvidence(
        forked=420, exited=420, measured=416, never_reaped=4, max_s=0.003,
        holders=held(3, pid=77, depth=1, command="sh -c cgi") + held(1, pid=78, depth=1),
    )  # fmt: skip
    assert zombie_verdict(evidence).startswith(
        "leaves zombies: 4 of the 420 children that exited never reaped (1.0%), 3 held by"
        " PID 77 (sh -c cgi), a child of the process the harness started, and 1 other holder"
    )


def test_no_child_exited_is_not_called_reaping() -> None:
    assert zombie_verdict(EventEvidence(forked=3)) == (
        "no child exited during the load: its reaping was not put to the test"
        " (3 children forked, still running)"
    )
    pool = Pool(before=5, retired=0, retired_reaped=0, slowest_retired_reap_s=None, kept=5,
                new=0, new_alive=0)  # fmt: skip
    assert zombie_verdict(EventEvidence(pool=pool)) == (
        "forked no child during the load and no worker exited: its reaping was not put to the test"
    )
    assert zombie_verdict(EventEvidence()) == "never forked a child: nothing to reap"


def test_a_prefork_pool_that_retires_and_replaces_workers() -> None:
    pool = Pool(before=17, retired=12, retired_reaped=12, slowest_retired_reap_s=0.84, kept=5,
                new=4, new_alive=3)  # fmt: skip
    assert pool_verdict(EventEvidence(pool=pool)) == (
        "prefork pool: 12 of the 17 workers there before the load retired and reaped"
        " (slowest 0.84 s), 5 kept; 4 forked since, 3 of them alive at the end"
    )
    # nginx reloaded twice: the workers of the first reload retired at the second
    pool = Pool(before=2, retired=2, retired_reaped=2, slowest_retired_reap_s=0.0005, kept=0,
                new=4, new_alive=2)  # fmt: skip
    verdict = pool_verdict(EventEvidence(pool=pool))
    assert verdict is not None and verdict.endswith(
        "0 kept; 4 forked since, 2 of them alive at the end"
    )


def test_a_pool_that_only_grew_keeps_its_workers() -> None:
    pool = Pool(before=5, retired=0, retired_reaped=0, slowest_retired_reap_s=None, kept=5,
                new=8, new_alive=8)  # fmt: skip
    assert pool_verdict(EventEvidence(pool=pool)) == (
        "prefork pool: the 5 workers there before the load all kept; 8 forked since, alive at"
        " the end"
    )
    assert pool_verdict(EventEvidence()) is None
    assert pool_verdict(EventEvidence(pool=pool, shell_wrapper=True)) is None


def test_zombies_there_before_the_load_are_named_apart() -> None:
    evidence = EventEvidence(
        forked=500, exited=500, measured=500, max_s=0.001, before=1, before_left=1,
        before_holders=held(1, pid=900, command="launcher"),
    )  # fmt: skip
    assert zombie_verdict(evidence) == (
        "reaps every child: 500 exited, all reaped, the slowest after 1 ms; 1 zombie there"
        " before the load (not its doing), still there, held by PID 900 (launcher), the"
        " process the harness started"
    )


def test_orphans_held_or_reaped_outside_the_tree_are_their_adopters() -> None:
    evidence = EventEvidence(
        forked=736, exited=736, measured=726, max_s=0.0021, p50_s=0.0003,
        reaped_outside=(Holder(3442, 366, -1, slowest_s=0.26),),
        outside=(Holder(3442, 2, -1),),
    )  # fmt: skip
    assert zombie_verdict(evidence) == (
        "reaps every child: 736 exited, all reaped (366 of them by PID 3442, outside its"
        " tree, which adopted them, the slowest after 0.26 s), the slowest after 2.1 ms;"
        " 2 orphans of its tree left as zombies outside it, held by PID 3442, which adopted"
        " them"
    )


def test_orphans_the_harness_adopted_and_reaped_are_said_to_be_its() -> None:
    """The harness is a child subreaper: a CGI server's background jobs come to it."""
    evidence = EventEvidence(
        forked=1530, exited=1530, measured=1523, max_s=0.0037,
        reaped_outside=(Holder(16330, 174, -1, slowest_s=0.25),), recorder_pid=16330,
    )  # fmt: skip
    assert zombie_verdict(evidence) == (
        "reaps every child: 1,530 exited, all reaped (174 of them by the harness itself"
        " (PID 16330), the child subreaper that adopted them, the slowest after 0.25 s),"
        " the slowest after 3.7 ms"
    )


def test_a_sentence_built_on_a_sampled_source_says_so() -> None:
    evidence = EventEvidence(
        sampled={"forks": "no connector"}, forked=90, exited=90, measured=90, max_s=0.001
    )
    assert zombie_verdict(evidence) == (
        "reaps every child: at least 90 exited, all reaped, the slowest seen after 1 ms"
        " (sampled: forks)"
    )
    reaps = EventEvidence(sampled={"reaps": "no pidfd"}, exited=5, bounded=5, bounded_max_s=0.04)
    assert zombie_verdict(reaps) == (
        "reaps every child: 5 exited, all reaped, each within 40 ms (only bounds) (sampled: reaps)"
    )


def test_without_fork_events_a_server_that_left_every_child_seen_has_no_others() -> None:
    """Children reaped between two scans are not seen: not "never reaps", but no
    "the others reaped" either when none was seen reaped."""
    evidence = EventEvidence(
        sampled={"forks": "no connector"}, exited=343, never_reaped=343, holders=held(343)
    )
    assert zombie_verdict(evidence) == (
        "leaves zombies: 343 of the at least 343 children that exited never reaped"
        " (100% at most), held by PID 4242 (python3 server.py), the process the harness"
        " started (sampled: forks)"
    )
