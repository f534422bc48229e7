"""Verdicts: what a scenario's series and counters say, in the words a person would use.

Pure functions of plain numbers and numpy arrays, so they are tested on synthetic series.
A verdict is judged from what was measured, not from the strategy's name: a "loop" reaper
that leaves zombies is reported as leaving zombies. The strategy only chooses the likely
cause to name ("signals coalesced" for a reaper that waits once per SIGCHLD), as the
strategy's ``shortfall`` recorded in scenario.json.

A share ("43% of children left as zombies") is of the children forked during the load,
and is given only where that divisor was counted (the server's counters): requests are
not children (some were refused at the cap, answered 503, or failed when the server
died). Without it a leak is still named where the zombies match the requests answered
one for one ("leaks one zombie per request"), and otherwise the count is given alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from reports import lifetime_verdicts
from reports.lifetime_verdicts import EventEvidence
from reports.series import first_finite, last_finite, peak
from reports.trend import describe, trend
from reports.wording import percent, plural

# A leak of one zombie per request leaves final zombies == children forked; allow for the
# last few children still running when the final sample was taken.
ONE_PER_REQUEST = 0.95
# An fd leak of one descriptor per request: growth/requests near 1, on enough requests to
# tell it from the noise of a few sockets opening and closing.
# A reaper that ends with no zombie may still fall behind under load (reaping starved by
# the accept loop, say): say so when zombies piled up to a tenth of the children.
BEHIND_SHARE = 0.10
BEHIND_MIN = 100
FD_PER_REQUEST = 0.8
FD_MIN_GROWTH = 10


def _no_series() -> np.ndarray:
    return np.empty(0)


@dataclass(frozen=True)
class Evidence:
    """What a verdict is judged on. Series are aligned arrays; NaN means not measured."""

    kind: str = "loadtest"
    strategy: str | None = None
    shortfall: str | None = None
    """Why the strategy leaves some children unreaped, if it is known to (scenario.json)."""
    t: np.ndarray = field(default_factory=_no_series)
    zombies: np.ndarray = field(default_factory=_no_series)
    fds: np.ndarray = field(default_factory=_no_series)
    final_zombies: int | None = None
    forked: int | None = None
    requests: int | None = None
    failures: int | None = None
    """Requests that failed (refused at the cap, 503, a dead server): no child answered them."""
    leak_client_fd: bool = False
    capped: bool = False
    cap: int | None = None
    capped_at: float | None = None
    descendant_zombies: np.ndarray = field(default_factory=_no_series)
    """Zombies held deeper in the tree than the target's own children."""
    final_descendant_zombies: int | None = None
    holders: tuple[dict, ...] = ()
    """scenario.json's zombie_holders: {"pid", "zombies", "cmdline", "depth"}, most first."""
    shell_wrapper: bool = False
    """The command the harness started is a shell (``sh -c``) running the real server."""
    alive: np.ndarray = field(default_factory=_no_series)
    baseline_alive: int | None = None
    """Live children before the load: a prefork server's workers."""
    reaped_child_faults: int | None = None
    """Growth of the tree's reaped children's page faults over the load (0: none reaped)."""
    sigchld_handled: dict[str, str] | None = None
    """PID -> SIGCHLD disposition for the tree's processes not at the default; None: unknown."""
    zombies_at_stop: int | None = None
    """Zombies in the tree at the harness's first look after Locust exited. Locust takes a
    good part of a second to stop, so a SIGCHLD reaper has none left by then; a server
    that still holds some reaps on a timer or in batches (ForkingTCPServer polls every
    0.5 s)."""
    last_fall_s: float | None = None
    """Seconds after that first look when the zombie count last fell while settling."""
    refused_at_cap: int | None = None
    refused_by_kernel: bool = False
    """refused_at_cap is the cgroup's count of refused forks (not the server's)."""
    data_ends_at: float | None = None
    """Seconds into the scenario where the samples stop although the run went on."""
    interrupted_at: float | None = None
    """Seconds into the load of the Ctrl-C that cut it short."""
    pid1: dict | None = None
    """scenario.json's pid1: the server ran as PID 1 of a PID namespace, or under an init
    that did ({"init", "pid1", "server", "server_nspid"}); None otherwise."""
    reaped: int | None = None
    """Children the server counted as reaped while serving."""
    users: int | None = None
    """Locust users asked for: the most requests in flight at any moment."""
    server_ended: str | None = None
    """How the server ended by itself before the final sample could be taken ("exited 1"):
    then nothing was left "at the end" to judge, only its last sample."""
    pids_limit: dict | None = None
    """scenario.json's cap_hit when the server's live processes filled its cgroup."""

    @property
    def answered(self) -> int | None:
        """Requests that got an answer: each was a child of a forking server."""
        if self.requests is None:
            return None
        return max(self.requests - (self.failures or 0), 0)

    events: EventEvidence | None = None
    """Every child's life from the event record, where the run has one: the zombies and
    the pool are judged from it instead of the samples (reports/lifetime_verdicts.py)."""


def final_zombies(evidence: Evidence) -> int | None:
    """The final count: the harness's final sample when it kept one, else the last row."""
    if evidence.final_zombies is not None:
        return evidence.final_zombies
    last = last_finite(evidence.zombies)
    return None if math.isnan(last) else int(last)


def peak_zombies(evidence: Evidence) -> int | None:
    """The most zombies at once: the target's own, or the whole tree's where the target is
    an init in front of the server (the server's zombies are then the init's grandchildren)."""
    series = tree_series(evidence) if init_in_front(evidence.pid1) else evidence.zombies
    candidates = [peak(series)]
    if evidence.final_zombies is not None:
        candidates.append(float(evidence.final_zombies))
    measured = [value for value in candidates if not math.isnan(value)]
    return int(max(measured)) if measured else None


def verdict(evidence: Evidence) -> str:
    """The whole verdict: zombies first, then descriptors, then whether the cap stopped it.

    Where the samples end before the run did, nothing is judged past that point: a share
    of the children would compare zombies counted then with children forked until the end.
    """
    exact = evidence.events if evidence.kind != "watch" else None
    if evidence.data_ends_at is not None:
        parts = [data_end_verdict(evidence), cap_verdict(evidence)]
    elif evidence.server_ended is not None:
        parts = [
            sampled(server_ended_verdict(evidence)),
            cap_verdict(evidence),
            limit_verdict(evidence),
        ]
    elif exact is not None:  # every child's life, from the event record
        parts = [
            interrupted_head(evidence),
            lifetime_verdicts.zombie_verdict(exact, evidence.shortfall),
            lifetime_verdicts.pool_verdict(exact),
            fd_verdict(evidence),
            cap_verdict(evidence),
            limit_verdict(evidence),
        ]
    elif evidence.interrupted_at is not None:
        parts = [sampled(interrupted_verdict(evidence)), cap_verdict(evidence)]
    else:
        parts = [
            watch_verdict(evidence)
            if evidence.kind == "watch"
            else sampled(zombie_verdict(evidence)),
            sampled(prefork_verdict(evidence)),
            fd_verdict(evidence),
            cap_verdict(evidence),
            limit_verdict(evidence),
        ]
    return pid1_prefix(evidence) + "; ".join(part for part in parts if part)


def pid1_init(pid1: dict | None) -> str | None:
    """The init in front of a server run as PID 1 ("none": the server is PID 1), from
    scenario.json's ``pid1``; None when the server did not run in a namespace of its own."""
    init = (pid1 or {}).get("init")
    return init if isinstance(init, str) else None


def init_in_front(pid1: dict | None) -> str | None:
    """The init that ran as PID 1 in front of the server (the sampler's target), if any."""
    init = pid1_init(pid1)
    return None if init == "none" else init


def pid1_prefix(evidence: Evidence) -> str:
    """How the server ran, where it ran as in a container: it decides who holds orphans."""
    init = pid1_init(evidence.pid1)
    if init is None:
        return ""
    if init == "none":
        return "as PID 1 of its PID namespace, without an init: "
    return f"under {init} as PID 1 of its PID namespace: "


def held_by_pid1(evidence: Evidence, final: int) -> str:
    """Who the zombies of a server that is PID 1 itself are: its own children (as many as it
    forked and did not reap, at most) or orphans it was handed; "" for any other server."""
    pid1 = evidence.pid1 or {}
    if pid1_init(evidence.pid1) != "none":
        return ""
    held = f", held by PID 1, the server itself (host PID {pid1.get('pid1')})"
    if evidence.forked is None or evidence.reaped is None:
        return held
    own = min(final, max(0, evidence.forked - evidence.reaped))
    counted = f"it forked {evidence.forked:,} and reaped {evidence.reaped:,}"
    if own == 0:
        return f"{held}: all orphans it was handed ({counted}); an init would reap them"
    if own == final:
        return f"{held}: its own children ({counted}), which no init can reap while it lives"
    return (
        f"{held}: {final - own:,} orphans it was handed, which an init would reap, and"
        f" {own:,} its own children ({counted})"
    )


SAMPLED = " (sampled)"
"""After a sentence built on samples: what happened between two of them is not seen, so
"at least" where the event record would say "exactly"."""
UNJUDGED = ("zombies not measured", "no request completed and no child seen: nothing to judge")


def sampled(part: str | None) -> str | None:
    """A sentence built on samples, saying so."""
    if part is None or part in UNJUDGED:
        return part
    return part + SAMPLED


def one_per_request(zombies: int, evidence: Evidence) -> bool:
    """Zombies match the children one for one: the children forked where they were
    counted, else the requests answered (each was a child of a forking server)."""
    children = evidence.forked if evidence.forked is not None else evidence.answered
    if not children:
        return False
    return ONE_PER_REQUEST <= zombies / children <= 1 / ONE_PER_REQUEST


def interrupted_head(evidence: Evidence) -> str | None:
    """ "interrupted after 12.3 s of load: 1,210 requests" for a run cut short; else None."""
    if evidence.interrupted_at is None:
        return None
    requests = (
        "requests not counted"
        if evidence.requests is None
        else (f"{evidence.requests:,} {'request' if evidence.requests == 1 else 'requests'}")
    )
    return f"interrupted after {evidence.interrupted_at:.1f} s of load: {requests}"


def interrupted_verdict(evidence: Evidence) -> str:
    """What a run cut short measured up to the interrupt, and no more: its last sample
    before it against the requests answered by then (the server's counters are of its
    shutdown, after the interrupt: no share of them)."""
    final = final_zombies(evidence)
    deeper = evidence.final_descendant_zombies or 0
    text = interrupted_head(evidence) or ""
    if final is None:
        return f"{text}, zombies not measured"
    held = final + deeper
    text += f", {plural(held, 'zombie')} at the last sample before it"
    return f"leaks one zombie per request; {text}" if leaking_so_far(held, evidence) else text


def leaking_so_far(held: int, evidence: Evidence) -> bool:
    """Zombies one for one with the requests answered at a moment of the load, give or take
    the requests in flight then (up to one per user: answered but not yet counted, or
    counted a moment after the sample), and more of them than could be in flight: no
    reaper holds that many between an exit and its reap."""
    answered, in_flight = evidence.answered, evidence.users or 0
    if not answered or held <= in_flight:
        return False
    low = ONE_PER_REQUEST * answered - in_flight
    return low <= held <= answered / ONE_PER_REQUEST + in_flight


def tree_series(evidence: Evidence) -> np.ndarray:
    """Zombies anywhere in the tree, per sample: every one holds a PID."""
    if evidence.descendant_zombies.size != evidence.zombies.size:
        return evidence.zombies
    return evidence.zombies + np.nan_to_num(evidence.descendant_zombies)


def never_forked(evidence: Evidence) -> bool:
    """True only on positive evidence: no child seen in any sample, none counted, none reaped.

    A child that lived and was reaped between two samples still leaves the kernel's
    count of reaped children's page faults grown, so a fast reaper is not mistaken
    for a server that does not fork. That witness is blind where the kernel reaps
    (SIGCHLD ignored, or a handler with SA_NOCLDWAIT, which /proc does not show), so
    the claim also needs SIGCHLD at its default everywhere in the tree.
    """
    return evidence.sigchld_handled == {} and no_exit_seen(evidence)


def no_exit_seen(evidence: Evidence) -> bool:
    """No child seen to exit: none counted, none new alive in any sample, no zombie, and
    the kernel's count of reaped children's page faults unchanged.

    Where SIGCHLD is caught this is what a prefork server looks like when its workers
    outlive the load: "reaps every child" would then claim what was never put to the test.
    """
    peak_alive = peak(evidence.alive)
    return (
        evidence.reaped_child_faults == 0
        and not evidence.forked
        and evidence.baseline_alive is not None
        and not math.isnan(peak_alive)
        and peak_alive <= evidence.baseline_alive
        and (peak(tree_series(evidence)) or 0) == 0
        and not evidence.final_descendant_zombies
    )


def ignores_sigchld(evidence: Evidence) -> str | None:
    """The PID in the tree that ignores SIGCHLD (the kernel reaps its children), if any."""
    handled = evidence.sigchld_handled or {}
    return next((pid for pid, how in handled.items() if how == "ignored"), None)


def fork_seen(evidence: Evidence) -> bool:
    """A child was counted, caught alive by a sample, or left its trace when reaped."""
    peak_alive = peak(evidence.alive)
    grew = (
        evidence.baseline_alive is not None
        and not math.isnan(peak_alive)
        and peak_alive > evidence.baseline_alive
    )
    return bool(evidence.forked) or bool(evidence.reaped_child_faults) or grew


def data_end_verdict(evidence: Evidence) -> str:
    """What is known up to the last sample, and no more."""
    last = last_finite(tree_series(evidence))
    seen = "" if math.isnan(last) else f", with {plural(int(last), 'zombie')} then"
    return (
        f"data ends at {evidence.data_ends_at:.1f} s{seen}: sampling stopped before the run"
        " ended, so no verdict on the rest"
    )


def server_ended_verdict(evidence: Evidence) -> str:
    """A server that ended before the final sample, not stopped by the harness (killed, or
    dead when a fork failed at the cap): its last sample, and no share of what it left (its
    zombies went to the harness, which reaped them); a leak only where that sample matches
    the requests answered one for one, give or take those in flight."""
    ended = f"{evidence.server_ended}, not stopped by the harness"
    text = f"the server ended ({ended}) before the final sample"
    last = last_finite(tree_series(evidence))
    if math.isnan(last):
        return text
    text += f": {plural(int(last), 'zombie')} at its last sample"
    return f"leaks one zombie per request; {text}" if leaking_so_far(int(last), evidence) else text


def zombie_verdict(evidence: Evidence) -> str:
    """Zombies left after a load: none, one per request, or a share of the children."""
    final = final_zombies(evidence)
    if final is None:
        return "zombies not measured"
    deeper = evidence.final_descendant_zombies or 0
    if deeper:
        return tree_leak_verdict(evidence, final + deeper)
    if final == 0:
        most = peak_zombies(evidence) or 0
        if most == 0:
            if never_forked(evidence):
                samples = int(np.isfinite(evidence.alive).sum())
                # A prefork server forked its workers before the load, not during it.
                never = (
                    "forked no child during the load"
                    if evidence.baseline_alive
                    else ("never forked a child")
                )
                return (
                    f"{never}: nothing to reap (no new child seen in"
                    f" {plural(samples, 'sample')}, none reaped per the kernel's counters)"
                )
            ignoring = ignores_sigchld(evidence)
            if ignoring is not None and fork_seen(evidence):
                return (
                    f"the kernel reaps every child (PID {ignoring} ignores SIGCHLD);"
                    " no zombie ever seen"
                )
            if ignoring is not None:  # no fork seen: say only what holds either way
                return (
                    f"no zombie ever seen: PID {ignoring} ignores SIGCHLD, so the kernel reaps"
                    " any child it forks"
                )
            if evidence.requests == 0 and not fork_seen(evidence):
                return "no request completed and no child seen: nothing to judge"
            if no_exit_seen(evidence):
                return (
                    "no zombie ever seen, and no child seen to exit during the load (none"
                    " reaped per the kernel's counters): its reaping was not put to the test"
                )
            return "reaps every child; no zombie ever seen"
        if evidence.zombies_at_stop:
            later = "" if evidence.last_fall_s is None else f" {evidence.last_fall_s:.1f} s"
            return (
                f"reaps in batches: at least {plural(most, 'zombie')} at once, none left after"
                f" the load ({evidence.zombies_at_stop} still held when it stopped, reaped"
                f"{later} later)"
            )
        children = evidence.forked
        if children and most >= max(BEHIND_MIN, BEHIND_SHARE * children):
            return (
                f"reaps every child in the end, but fell behind: at least {plural(most, 'zombie')}"
                f" at once ({percent(most / children)} of the children)"
            )
        return f"reaps every child; at least {plural(most, 'zombie')} at once"
    children = evidence.forked
    if not children:  # the children were not counted: no share of the requests
        held = held_by_pid1(evidence, final)
        if one_per_request(final, evidence):
            return f"leaks one zombie per request{held}"
        return f"{plural(final, 'zombie')} left at the end{held}"
    share = final / children
    held = held_by_pid1(evidence, final)
    if share > 1 / ONE_PER_REQUEST:
        noun = "child" if children == 1 else "children"
        return f"{plural(final, 'zombie')} left for {children:,} {noun}{held}"
    if share >= ONE_PER_REQUEST:
        return f"leaks one zombie per request{held}"
    if evidence.shortfall and not held:
        return f"{evidence.shortfall}: {percent(share)} of children left as zombies"
    return f"{percent(share)} of children left as zombies{held}"


def tree_leak_verdict(evidence: Evidence, total: int) -> str:
    """Zombies left below the target: how many, and which process holds them."""
    if one_per_request(total, evidence):
        text = f"leaks one zombie per request ({plural(total, 'zombie')})"
    else:
        text = f"{plural(total, 'zombie')} left at the end"
    if not evidence.holders:
        return f"{text}, held below the server"
    top = evidence.holders[0]
    inside = "" if top.get("nspid") is None else f", PID {top.get('nspid')} in its namespace"
    held = f"{top.get('zombies')} held by PID {top.get('pid')} ({top.get('cmdline')}{inside})"
    depth = top.get("depth")
    init = pid1_init(evidence.pid1)
    pid1 = evidence.pid1 or {}
    if init not in (None, "none") and top.get("pid") == pid1.get("server"):
        where = (
            f"the server itself, under {init}: their parent is alive and does not wait, so no"
            " init can reap them"
        )
    elif init is not None and top.get("pid") == pid1.get("pid1"):
        where = "PID 1 of its namespace" + ("" if init == "none" else f", {init}")
    elif depth == 0:
        where = "the process the harness started"
    elif depth == 1 and evidence.shell_wrapper:
        where = "the server the shell wrapper (sh -c) started"
    elif depth == 1:
        where = "a child of the process the harness started"
    else:
        where = f"{depth} levels below the process the harness started"
    others = len(evidence.holders) - 1
    more = f", and {plural(others, 'other holder')}" if others > 0 else ""
    return f"{text}: {held}, {where}{more}"


def prefork_verdict(evidence: Evidence) -> str | None:
    """Workers that were alive before the load and still are: a prefork server, said once."""
    # A shell's child is the server, and so is an init's.
    if not evidence.baseline_alive or evidence.shell_wrapper or init_in_front(evidence.pid1):
        return None
    count = evidence.baseline_alive
    return f"{count} live {'child' if count == 1 else 'children'} before the load kept (prefork)"


def watch_verdict(evidence: Evidence) -> str:
    """Zombies of a watched process: none, or how many and which way they are going."""
    final = final_zombies(evidence)
    if final is None:
        return "zombies not measured"
    most = peak_zombies(evidence) or 0
    if final == 0:
        if most == 0:
            return "no zombies"
        return f"no zombies left; at least {plural(most, 'zombie')} at once (sampled)"
    # The direction is measured over the end of the watch only (reports.trend), and
    # what came before is said apart: "rose to 50 zombies, then held".
    found = trend(evidence.t.tolist(), evidence.zombies.tolist())
    return "zombies not measured" if found is None else describe(found)


def fd_verdict(evidence: Evidence) -> str | None:
    """Descriptors held by the server growing with requests: the forgotten close()."""
    init = init_in_front(evidence.pid1)
    if init is not None:  # the sampler's target is the init
        leak = evidence.leak_client_fd
        return f"descriptors sampled are {init}'s, not the server's: not judged" if leak else None
    start, end = first_finite(evidence.fds), last_finite(evidence.fds)
    if math.isnan(start) or math.isnan(end) or not evidence.requests:
        return "descriptors not measured" if evidence.leak_client_fd else None
    growth = end - start
    per_request = growth / evidence.requests
    if growth >= FD_MIN_GROWTH and per_request >= FD_PER_REQUEST:
        return "leaks one descriptor per request"
    if growth >= FD_MIN_GROWTH:
        return f"open descriptors grew by {growth:.0f} ({per_request:.2f} per request)"
    if evidence.leak_client_fd:
        return "no descriptor leak seen despite --leak-client-fd"
    return None


def cap_verdict(evidence: Evidence) -> str | None:
    if not evidence.capped:
        return None
    text = "stopped at the zombie cap"
    if evidence.cap is not None:
        text += f" of {evidence.cap}"
    if evidence.capped_at is not None:
        text += f" after {evidence.capped_at:.0f} s"
    if evidence.refused_at_cap and evidence.refused_by_kernel:
        text += f"; the kernel refused {plural(evidence.refused_at_cap, 'fork')} at the cap"
    elif evidence.refused_at_cap:
        text += f"; refused {plural(evidence.refused_at_cap, 'request')} at the cap"
    return text


def limit_verdict(evidence: Evidence) -> str | None:
    """A load stopped because the server's live processes filled its cgroup: not the cap."""
    hit = evidence.pids_limit
    if not hit:
        return None
    return (
        f"stopped when its live processes filled the pids limit of {hit.get('pids_max')}"
        f" (from {hit.get('live_at_start')} to {hit.get('live')} live, with"
        f" {hit.get('zombies')} zombies): the zombie cap was not reached"
    )
