"""Verdicts judged on synthetic series: the words a person reads must match what happened."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reports.verdicts import Evidence, percent, verdict
from server.reapers import STRATEGIES

T = np.arange(0, 20, 0.05)  # 20 s at 20 samples/s
RPS = 100


def leak_series(share: float) -> np.ndarray:
    """Zombies when `share` of the children forked at RPS are never reaped."""
    return np.floor(T * RPS * share)


def test_no_reaper_leaks_one_zombie_per_request() -> None:
    evidence = Evidence(
        strategy="none", t=T, zombies=leak_series(1.0), final_zombies=2000, forked=2000
    )
    assert verdict(evidence) == "leaks one zombie per request (sampled)"


def test_last_children_still_running_do_not_hide_the_leak() -> None:
    evidence = Evidence(strategy="none", t=T, zombies=leak_series(1.0), forked=2003)
    assert verdict(evidence) == "leaks one zombie per request (sampled)"


def test_single_waitpid_per_signal_reports_coalescing_share() -> None:
    evidence = Evidence(
        strategy="single",
        shortfall=STRATEGIES["single"].shortfall,
        t=T,
        zombies=leak_series(0.43),
        forked=2000,
    )
    assert verdict(evidence) == "signals coalesced: 43% of children left as zombies (sampled)"


def test_partial_leak_without_single_strategy_names_no_cause() -> None:
    evidence = Evidence(strategy="loop", t=T, zombies=leak_series(0.25), forked=2000)
    assert verdict(evidence) == "25% of children left as zombies (sampled)"


def test_tiny_leak_is_not_rounded_to_zero_percent() -> None:
    evidence = Evidence(
        strategy="single", shortfall=STRATEGIES["single"].shortfall, final_zombies=3, forked=2000
    )
    assert verdict(evidence) == "signals coalesced: 0.1% of children left as zombies (sampled)"


def test_clean_reaper_reports_its_worst_moment() -> None:
    zombies = np.where(T < 19, np.arange(T.size) % 9, 0).astype(float)
    evidence = Evidence(strategy="loop", t=T, zombies=zombies, forked=2000, requests=2000)
    assert verdict(evidence) == "reaps every child; at least 8 zombies at once (sampled)"


def test_reaper_that_never_shows_a_zombie() -> None:
    evidence = Evidence(strategy="ignore", t=T, zombies=np.zeros_like(T), forked=2000)
    assert verdict(evidence) == "reaps every child; no zombie ever seen (sampled)"


def test_a_run_no_request_reached_is_not_called_a_reaper() -> None:
    # A distributed run whose workers never came: the no-reaper server served nothing.
    evidence = Evidence(strategy="none", t=T, zombies=np.zeros_like(T), forked=0, requests=0)
    assert verdict(evidence) == "no request completed and no child seen: nothing to judge"


def test_one_zombie_is_singular() -> None:
    zombies = np.zeros_like(T)
    zombies[5] = 1
    assert verdict(Evidence(t=T, zombies=zombies)) == (
        "reaps every child; at least 1 zombie at once (sampled)"
    )


def test_fd_leak_is_reported_next_to_a_clean_reaper() -> None:
    evidence = Evidence(
        strategy="loop",
        t=T,
        zombies=np.zeros_like(T),
        fds=5 + np.floor(T * RPS),
        requests=2000,
        leak_client_fd=True,
    )
    assert verdict(evidence) == (
        "reaps every child; no zombie ever seen (sampled); leaks one descriptor per request"
    )


def test_flag_without_growth_says_no_fd_leak_was_seen() -> None:
    evidence = Evidence(
        t=T, zombies=np.zeros_like(T), fds=np.full_like(T, 6), requests=2000, leak_client_fd=True
    )
    assert verdict(evidence).endswith("no descriptor leak seen despite --leak-client-fd")


def test_slow_fd_growth_is_shown_with_its_rate() -> None:
    evidence = Evidence(t=T, zombies=np.zeros_like(T), fds=5 + np.floor(T * 10), requests=2000)
    assert verdict(evidence).endswith("open descriptors grew by 199 (0.10 per request)")


def test_noise_in_fds_is_not_a_leak() -> None:
    fds = 5 + np.arange(T.size) % 2
    evidence = Evidence(t=T, zombies=np.zeros_like(T), fds=fds.astype(float), requests=2000)
    assert verdict(evidence) == "reaps every child; no zombie ever seen (sampled)"


def test_capped_run_says_where_it_stopped() -> None:
    evidence = Evidence(
        strategy="none",
        t=T,
        zombies=np.minimum(leak_series(1.0), 5000),
        final_zombies=5000,
        forked=5000,
        capped=True,
        cap=5000,
        capped_at=31.2,
    )
    assert verdict(evidence) == (
        "leaks one zombie per request (sampled); stopped at the zombie cap of 5000 after 31 s"
    )


def test_more_zombies_than_children_is_not_called_one_per_request() -> None:
    evidence = Evidence(strategy="none", final_zombies=30, forked=10)
    assert verdict(evidence) == "30 zombies left for 10 children (sampled)"


def test_unknown_children_count_still_reports_zombies() -> None:
    assert verdict(Evidence(final_zombies=7)) == "7 zombies left at the end (sampled)"


def test_nothing_measured() -> None:
    assert verdict(Evidence()) == "zombies not measured"


def test_a_reaper_that_falls_behind_is_called_out() -> None:
    zombies = np.where(T < 5, T * 100, 0.0)  # piles up to ~500, then all reaped at once
    evidence = Evidence(strategy="wakeup", t=T, zombies=zombies, forked=2000)
    assert verdict(evidence).startswith("reaps every child in the end, but fell behind: at least")


def test_a_few_zombies_at_once_is_not_falling_behind() -> None:
    evidence = Evidence(strategy="loop", t=T, zombies=np.where(T < 5, 60.0, 0.0), forked=2000)
    assert verdict(evidence) == "reaps every child; at least 60 zombies at once (sampled)"


def test_final_sample_wins_over_last_row() -> None:
    evidence = Evidence(t=T, zombies=leak_series(1.0), final_zombies=0)
    assert verdict(evidence).startswith("reaps every child; at least 1,995 zombies")


@pytest.mark.parametrize(
    ("zombies", "expected"),
    [
        (np.zeros_like(T), "no zombies"),
        (np.where(T < 10, 4.0, 0.0), "no zombies left; at least 4 zombies at once (sampled)"),
        (np.full_like(T, 3.0), "3 zombies, flat"),
        (np.floor(T * 2.5), "49 zombies, rising +2.5/s over the last 5 s"),
        (np.floor(T * 0.5), "9 zombies, rising +0.5/s over the last 5 s"),
        (5 + T * 0.04, "5 zombies, flat"),  # under one zombie gained over the watch
        (np.floor(40 - T), "20 zombies, falling -1.0/s over the last 5 s"),
        (np.minimum(np.floor(T * 10), 50.0), "rose to 50 zombies, then held for the last 5 s"),
        (
            np.maximum(500 - np.floor(T * 50), 100.0),
            "fell to 100 zombies, then held for the last 5 s",
        ),
    ],
)
def test_watch_verdicts(zombies: np.ndarray, expected: str) -> None:
    assert verdict(Evidence(kind="watch", t=T, zombies=zombies)) == expected


def test_slow_growth_over_a_long_watch_is_given_per_minute() -> None:
    t = np.arange(0, 120, 0.5)
    assert verdict(Evidence(kind="watch", t=t, zombies=5 + t * 0.05)) == (
        "10 zombies, rising +3.0/min over the last 30 s"
    )


def test_watch_trend_is_the_recent_one() -> None:
    zombies = np.where(T < 10, 0.0, np.floor((T - 10) * 2))
    assert verdict(Evidence(kind="watch", t=T, zombies=zombies)) == (
        "19 zombies, rising +2.0/s over the last 5 s"
    )


def test_percent_formatting() -> None:
    assert [percent(x) for x in (0.0, 0.004, 0.43, 1.0)] == ["0%", "0.4%", "43%", "100%"]


QUIET_TREE = np.zeros_like(T)


def test_a_server_that_never_forks_is_said_to_never_fork() -> None:
    evidence = Evidence(
        t=T, zombies=QUIET_TREE, alive=QUIET_TREE, baseline_alive=0, reaped_child_faults=0,
        sigchld_handled={}, requests=2000,
    )  # fmt: skip
    assert verdict(evidence).startswith("never forked a child: nothing to reap")
    assert f"{T.size} samples" in verdict(evidence)


QUIET_SERVER: dict[str, Any] = {
    "t": T, "zombies": QUIET_TREE, "alive": QUIET_TREE, "baseline_alive": 0,
    "reaped_child_faults": 0, "requests": 2000, "sigchld_handled": {},
}  # fmt: skip
"""A server that answered 2,000 requests with no child seen, none reaped, no zombie."""


@pytest.mark.parametrize(
    "change",
    [
        {"reaped_child_faults": 140},  # children came and went between samples
        {"reaped_child_faults": None},  # the kernel's counter could not be read
        {"forked": 2000},  # the server counted its forks
        {"alive": np.where(T > 5, 1.0, 0.0)},  # a child was seen
        {"baseline_alive": None},  # nothing known about the start
    ],
)
def test_never_forked_needs_every_witness(change: dict) -> None:
    assert verdict(Evidence(**{**QUIET_SERVER, **change})) == (
        "reaps every child; no zombie ever seen (sampled)"
    )


@pytest.mark.parametrize(
    "handled",
    [
        {"7": "caught"},  # a handler that may reap with SA_NOCLDWAIT, or a prefork master
        None,  # dispositions not read
    ],
)
def test_no_child_seen_to_exit_is_not_called_reaping(handled: dict | None) -> None:
    # gunicorn's master catches SIGCHLD; its workers outlived the load, so nothing was reaped.
    evidence = Evidence(**{**QUIET_SERVER, "sigchld_handled": handled})
    assert verdict(evidence) == (
        "no zombie ever seen, and no child seen to exit during the load (none reaped per the"
        " kernel's counters): its reaping was not put to the test (sampled)"
    )


def test_a_timer_reaper_reaps_in_batches() -> None:
    zombies = np.where(T < 19, np.arange(T.size) % 5, 0).astype(float)
    evidence = Evidence(
        t=T, zombies=zombies, final_zombies=0, requests=2000, zombies_at_stop=3, last_fall_s=0.35
    )
    assert verdict(evidence) == (
        "reaps in batches: at least 4 zombies at once, none left after the load"
        " (3 still held when it stopped, reaped 0.3 s later) (sampled)"
    )


def test_a_leak_below_a_shell_wrapper_is_found_and_attributed() -> None:
    holder = {"pid": 4321, "zombies": 991, "cmdline": "python3 server.py 8000", "depth": 1}
    evidence = Evidence(
        t=T, zombies=QUIET_TREE, final_zombies=0, final_descendant_zombies=991, requests=991,
        holders=(holder,), shell_wrapper=True, baseline_alive=1,
    )  # fmt: skip
    assert verdict(evidence) == (
        "leaks one zombie per request (991 zombies): 991 held by PID 4321"
        " (python3 server.py 8000), the server the shell wrapper (sh -c) started (sampled)"
    )


def test_a_leak_deep_in_a_tree_names_its_depth() -> None:
    holders = (
        {"pid": 7, "zombies": 30, "cmdline": "worker", "depth": 2},
        {"pid": 5, "zombies": 1, "cmdline": "master", "depth": 0},
    )
    evidence = Evidence(
        final_zombies=1, final_descendant_zombies=30, requests=2000, holders=holders
    )
    assert verdict(evidence) == (
        "31 zombies left at the end: 30 held by PID 7 (worker), 2 levels below the process"
        " the harness started, and 1 other holder (sampled)"
    )


def test_prefork_workers_are_not_a_leak() -> None:
    workers = np.full_like(T, 2.0)
    evidence = Evidence(
        t=T, zombies=QUIET_TREE, alive=workers, baseline_alive=2, reaped_child_faults=0,
        sigchld_handled={}, requests=2000,
    )  # fmt: skip
    text = verdict(evidence)
    assert text.startswith("forked no child during the load: nothing to reap")
    assert text.endswith("; 2 live children before the load kept (prefork) (sampled)")


def test_where_the_kernel_reaps_no_fork_is_claimed_either_way() -> None:
    # busybox httpd ignores SIGCHLD: its children leave no trace once gone.
    evidence = Evidence(
        t=T, zombies=QUIET_TREE, alive=QUIET_TREE, baseline_alive=0, reaped_child_faults=0,
        sigchld_handled={"812": "ignored"}, requests=2000,
    )  # fmt: skip
    assert verdict(evidence) == (
        "no zombie ever seen: PID 812 ignores SIGCHLD, so the kernel reaps any child it forks"
        " (sampled)"
    )

    forking = Evidence(**{**evidence.__dict__, "alive": np.where(T > 5, 2.0, 0.0)})
    assert verdict(forking) == (
        "the kernel reaps every child (PID 812 ignores SIGCHLD); no zombie ever seen (sampled)"
    )


def test_capped_by_the_kernel_names_the_refused_requests() -> None:
    evidence = Evidence(
        strategy="none", t=T, zombies=np.minimum(leak_series(1.0), 500), final_zombies=500,
        forked=500, capped=True, cap=500, capped_at=1.2, refused_at_cap=61,
    )  # fmt: skip
    assert verdict(evidence) == (
        "leaks one zombie per request (sampled); stopped at the zombie cap of 500 after 1 s;"
        " refused 61 requests at the cap"
    )


def test_where_the_data_ends_no_share_is_given() -> None:
    # 300 zombies when the disk filled, 3000 children forked by the end: not "10%".
    evidence = Evidence(
        strategy="none", t=T[:60], zombies=leak_series(1.0)[:60], forked=3000, data_ends_at=3.0
    )
    text = verdict(evidence)
    assert text.startswith("data ends at 3.0 s, with 295 zombies then")
    assert "%" not in text and "per request" not in text


def test_an_interrupted_run_is_judged_on_what_it_measured_up_to_the_interrupt() -> None:
    # The server's counters (forked 900) are of its shutdown, after the interrupt: the last
    # sample before it is compared with the requests answered by then, never with them.
    evidence = Evidence(
        strategy="none", t=T, zombies=leak_series(1.0), final_zombies=820, forked=900,
        requests=826, interrupted_at=8.4,
    )  # fmt: skip
    assert verdict(evidence) == (
        "leaks one zombie per request; interrupted after 8.4 s of load: 826 requests,"
        " 820 zombies at the last sample before it (sampled)"
    )


NAMESPACE = {"pid1": 900, "server": 901, "server_nspid": 2, "holder": 899}


def test_as_pid1_without_an_init_the_orphans_are_named_as_what_pid1_holds() -> None:
    pid1 = {**NAMESPACE, "init": "none", "server": 900, "server_nspid": 1}
    evidence = Evidence(
        strategy="own", t=T, zombies=leak_series(1.0), final_zombies=2000, forked=2000,
        reaped=2000, pid1=pid1,
    )  # fmt: skip
    assert verdict(evidence) == (
        "as PID 1 of its PID namespace, without an init: leaks one zombie per request, held by"
        " PID 1, the server itself (host PID 900): all orphans it was handed (it forked 2,000"
        " and reaped 2,000); an init would reap them (sampled)"
    )
    # A server that never waits holds its own children besides the orphans.
    both = Evidence(
        strategy="none",
        t=T,
        zombies=leak_series(2.0),
        final_zombies=4000,
        forked=2000,
        reaped=0,
        pid1=pid1,
    )
    assert verdict(both) == (
        "as PID 1 of its PID namespace, without an init: 4,000 zombies left for 2,000 children,"
        " held by PID 1, the server itself (host PID 900): 2,000 orphans it was handed, which"
        " an init would reap, and 2,000 its own children (it forked 2,000 and reaped 0) (sampled)"
    )


def test_under_an_init_a_parent_that_never_waits_is_named_and_no_init_can_help() -> None:
    holder = {"pid": 901, "zombies": 719, "cmdline": "server", "depth": 1, "nspid": 2}
    evidence = Evidence(
        strategy="none", t=T, zombies=QUIET_TREE, final_zombies=0,
        final_descendant_zombies=719, forked=719, holders=(holder,), baseline_alive=1,
        pid1={**NAMESPACE, "init": "tini"},
    )  # fmt: skip
    # (and the init's one live child, the server, is no prefork worker)
    assert verdict(evidence) == (
        "under tini as PID 1 of its PID namespace: leaks one zombie per request (719 zombies):"
        " 719 held by PID 901 (server, PID 2 in its namespace), the server itself, under tini:"
        " their parent is alive and does not wait, so no init can reap them (sampled)"
    )


def test_under_an_init_the_peak_is_the_trees_and_fds_are_not_the_servers() -> None:
    deeper = np.where(np.arange(T.size) % 50 == 0, 15.0, 0.0)
    evidence = Evidence(
        strategy="own", t=T, zombies=QUIET_TREE, descendant_zombies=deeper, final_zombies=0,
        final_descendant_zombies=0, forked=2000, requests=2000, leak_client_fd=True,
        fds=np.full_like(T, 3.0), pid1={**NAMESPACE, "init": "dumb-init"},
    )  # fmt: skip
    assert verdict(evidence) == (
        "under dumb-init as PID 1 of its PID namespace: reaps every child; at least 15 zombies"
        " at once (sampled); descriptors sampled are dumb-init's, not the server's: not judged"
    )


def test_an_interrupted_leak_allows_for_the_requests_in_flight() -> None:
    # 60 users whose children work 3 s: 101 zombies when 94 requests were counted.
    evidence = Evidence(
        strategy="none", final_zombies=101, requests=94, users=60, interrupted_at=7.4
    )
    assert verdict(evidence).startswith("leaks one zombie per request; interrupted after 7.4 s")
    few = Evidence(strategy="none", final_zombies=30, requests=40, users=60, interrupted_at=1.0)
    assert not verdict(few).startswith("leaks")  # no more zombies than could be in flight


def test_an_interrupted_reaper_is_not_judged_on_the_zombies_of_one_moment() -> None:
    # Three zombies between exit and reap at the last sample: no leak, and no "reaps all".
    evidence = Evidence(
        strategy="loop", t=T, zombies=np.full_like(T, 3.0), final_zombies=3, forked=1300,
        requests=1210, interrupted_at=12.3,
    )  # fmt: skip
    assert verdict(evidence) == (
        "interrupted after 12.3 s of load: 1,210 requests, 3 zombies at the last sample before it"
        " (sampled)"
    )


def test_without_counted_children_no_share_is_given() -> None:
    # The server was killed holding 1,288 zombies: 342 of the 1,630 requests failed after
    # it died, and no child counter survived. Not "79% of children".
    evidence = Evidence(strategy="none", final_zombies=1288, requests=1630, failures=342)
    assert verdict(evidence) == "leaks one zombie per request (sampled)"
    # A server not ours, capped: 180 requests, 30 refused at the cap, 150 zombies.
    capped = Evidence(final_zombies=150, requests=180, failures=30, capped=True, cap=150)
    assert verdict(capped).startswith(
        "leaks one zombie per request (sampled); stopped at the zombie cap"
    )
    some = Evidence(final_zombies=40, requests=1000, failures=0)
    assert verdict(some) == "40 zombies left at the end (sampled)"


def test_a_load_stopped_by_live_processes_says_the_cap_was_not_reached() -> None:
    hit = {"by": "live processes", "zombies": 0, "live": 106, "live_at_start": 6, "pids_max": 106}
    evidence = Evidence(t=T, zombies=np.zeros_like(T), final_zombies=0, forked=3000, pids_limit=hit)
    assert verdict(evidence).endswith(
        "stopped when its live processes filled the pids limit of 106 (from 6 to 106 live,"
        " with 0 zombies): the zombie cap was not reached"
    )


def test_the_kernels_refusals_are_named_as_forks() -> None:
    evidence = Evidence(
        strategy="none", final_zombies=500, forked=500, capped=True, cap=500, capped_at=1.2,
        refused_at_cap=61, refused_by_kernel=True,
    )  # fmt: skip
    assert verdict(evidence).endswith("; the kernel refused 61 forks at the cap")


def test_a_server_that_ended_by_itself_is_judged_on_its_last_sample_only() -> None:
    # The tutorial's server dies when its fork is refused at the cap: nothing is "left at
    # the end", and its last sample (217) is not the 300 the kernel held a moment later.
    evidence = Evidence(
        strategy=None, t=T[:30], zombies=np.linspace(0, 217, 30), requests=977, failures=677,
        capped=True, cap=300, capped_at=1.5, server_ended="exited 1",
    )  # fmt: skip
    assert verdict(evidence) == (
        "the server ended (exited 1, not stopped by the harness) before the final sample:"
        " 217 zombies at its last sample (sampled); stopped at the zombie cap of 300 after 2 s"
    )
    killed = Evidence(
        strategy="none", t=T, zombies=np.linspace(0, 1790, T.size), requests=1847, failures=19,
        users=10, server_ended="killed by SIGKILL",
    )  # fmt: skip
    assert verdict(killed).startswith("leaks one zombie per request; the server ended (killed")
