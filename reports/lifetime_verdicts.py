"""Verdicts judged from the event record: every child's life, not samples of the table.

A sampled verdict infers: a zombie that lived between two samples is never seen, a pool
that retires and replaces workers looks like one that keeps them, and "at most N zombies"
is a lower bound. With each child's exit and reap timed and its identity known, the
verdict says what happened to the children that exited while the server was judged:

- "reaps every child: 1,963 exited, all reaped, the slowest after 2.1 ms";
- "leaves zombies: 37 of 1,963 children that exited never reaped (1.9%), held by
  PID 4242 (...)"; "never reaps: ..." when none was;
- "no child exited during the load: its reaping was not put to the test";
- a prefork pool's workers: "prefork pool: 12 of the 17 workers there before the load
  retired and reaped (slowest 0.84 s), 5 kept; 4 forked since, 3 of them alive at the end";
- zombies there before the load, named apart from those the load made.

Counts are of the whole tree (a CGI script's zombies held by the shell the server ran
count as the server's), each with the PID that holds them. Where a source was missing
or events were lost, the summary says which figures are sampled, and so does every
sentence built on them. Pure functions of plain numbers, like reports/verdicts.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reports.wording import duration, percent, plural

SPREAD_FROM_S = 0.01
"""A slowest reap past this is said with its median, so a timer reaper's 0.5 s poll reads
as such ("the slowest after 0.49 s, half within 0.25 s")."""


@dataclass(frozen=True)
class Holder:
    """Who holds zombies at the end: its PID (None: not named), command and how far below
    the process the harness started it is (0: that process)."""

    pid: int | None
    zombies: int
    depth: int
    command: str = ""
    slowest_s: float | None = None
    """The longest any of them waited to be reaped by it (where that was timed)."""


@dataclass(frozen=True)
class Pool:
    """The server's own children seen as a pool (diagnostics/lifetimes.py's Workers)."""

    before: int
    retired: int
    retired_reaped: int
    slowest_retired_reap_s: float | None
    kept: int
    new: int
    """Its own children forked since the load began."""
    new_alive: int
    """Of those, alive at the end."""


@dataclass(frozen=True)
class Pid1:
    """A server run as PID 1 of its PID namespace, as in a container: the record's root is
    PID 1 (an init in front of the server, or the server itself), the evidence is of the
    server's own tree, and the orphans PID 1 adopted are told apart."""

    init: str
    """"none" (the server is PID 1), or the init in front of it."""
    pid1: int
    server: int
    server_nspid: int | None = None
    orphans: int = 0
    """Orphans of the server's tree (their parent died) that PID 1 adopted and that exited
    during the load."""
    orphans_reaped: int = 0
    orphans_slowest_s: float | None = None

    @property
    def itself(self) -> bool:
        """The server is PID 1 (no init): it holds the orphans it is handed."""
        return self.init == "none"


@dataclass(frozen=True)
class EventEvidence:
    """What the record shows of the tree until the server was judged (scenario.json's
    ``events``: its figures and what they rest on)."""

    sampled: dict[str, str] = field(default_factory=dict)
    """Figure ("forks", "exits", "reaps") -> why it is only sampled; empty: all exact."""
    forked: int = 0
    """Children forked while the record ran, at every depth."""
    exited: int = 0
    """Children that exited while it ran (not the zombies there before it began)."""
    measured: int = 0
    never_reaped: int = 0
    not_due: int = 0
    """Zombies at the end that had exited less than ``max_s`` (the slowest reap seen)
    before it: within the server's own time to reap, not counted in ``never_reaped``."""
    not_due_s: float | None = None
    """The oldest of those, at the end."""
    bounded: int = 0
    """Reaped, but before the recorder could time the reap: only a bound."""
    bounded_max_s: float | None = None
    p50_s: float | None = None
    max_s: float | None = None
    holders: tuple[Holder, ...] = ()
    """Who holds the zombies left in the server's tree, most first."""
    outside: tuple[Holder, ...] = ()
    """Orphans of the tree that were zombies in the hands of a process outside it (a
    subreaper or init that adopted them, the harness among them): not in ``never_reaped``,
    they are their adopter's to reap."""
    reaped_outside: tuple[Holder, ...] = ()
    """Those reaped by a process outside the tree that adopted them (``zombies``: how many)."""
    recorder_pid: int | None = None
    """The process that kept the record (in the harness, the harness: a child subreaper)."""
    before: int = 0
    """Zombies there when the record began."""
    before_left: int = 0
    before_holders: tuple[Holder, ...] = ()
    pool: Pool | None = None
    """The server's workers there before the load; None when it had none."""
    shell_wrapper: bool = False
    pid1: Pid1 | None = None
    """Where the server ran as PID 1 of a namespace: the figures above are of its own tree."""

    @property
    def reaped(self) -> int:
        return self.exited - self.never_reaped - self.not_due


def sampled_note(evidence: EventEvidence) -> str:
    """ " (sampled: forks, reaps)" after a sentence built on sampled figures; "" if exact."""
    if not evidence.sampled:
        return ""
    return f" (sampled: {', '.join(evidence.sampled)})"


def zombie_verdict(evidence: EventEvidence, shortfall: str | None = None) -> str:
    """What became of the children that exited, whole tree, and of the zombies there
    before the load and those handed outside the tree (each said apart)."""
    parts = [_children(evidence, shortfall) + sampled_note(evidence)]
    parts += [
        part for part in (_orphans(evidence), _handed_out(evidence), _before(evidence)) if part
    ]
    return "; ".join(parts)


def _children(evidence: EventEvidence, shortfall: str | None) -> str:
    exited, never = evidence.exited, evidence.never_reaped
    if exited == 0:
        if evidence.forked:
            alive = "still running" if evidence.forked > 1 else "it is still running"
            return (
                "no child exited during the load: its reaping was not put to the test"
                f" ({_children_count(evidence.forked)} forked, {alive})"
            )
        if evidence.pool is not None:
            return (
                "forked no child during the load and no worker exited: its reaping was not"
                " put to the test"
            )
        return "never forked a child: nothing to reap"
    # Without fork events, a child that lived and was reaped between two scans of /proc
    # is missed (one left a zombie is not: it stays to be found): a lower bound.
    missed = "forks" in evidence.sampled
    exited_text = f"at least {exited:,} exited" if missed else f"{exited:,} exited"
    if never == 0:
        adopters = _by_adopters(evidence)
        if evidence.not_due:
            return (
                f"reaps every child: {exited_text}, {evidence.reaped:,} reaped by the end"
                f"{adopters}, {_slowest(evidence)}{_not_due(evidence)}"
            )
        return f"reaps every child: {exited_text}, all reaped{adopters}, {_slowest(evidence)}"
    held = _held(evidence.holders, evidence)
    if never == exited and not missed:
        text = f"never reaps: all {_children_count(exited)} that exited left as zombies{held}"
    else:
        # without fork events the count of children is a lower bound, so the share is at
        # most; and where every child seen was left, there are no others to speak of
        share = percent(never / exited) + (" at most" if missed else "")
        others = f"; the others reaped, {_slowest(evidence)}" if exited > never else ""
        text = (
            f"leaves zombies: {never:,} of the {'at least ' if missed else ''}"
            f"{_children_count(exited)} that exited never"
            f" reaped ({share}){held}{others}{_not_due(evidence)}"
        )
    return f"{shortfall}: {text}" if shortfall else text


def _not_due(evidence: EventEvidence) -> str:
    """ "; the other exited 0.16 s before the end, sooner than that: not yet due"."""
    count, oldest = evidence.not_due, evidence.not_due_s
    if not count or oldest is None:
        return ""
    which = "the other exited" if count == 1 else f"the other {count:,} exited at most"
    return f"; {which} {duration(oldest)} before the end, sooner than that: not yet due"


def _slowest(evidence: EventEvidence) -> str:
    """How long the reaped ones waited: the slowest timed reap, and the bound of those
    reaped before they could be timed."""
    if evidence.max_s is None:
        if evidence.bounded_max_s is None:
            return "none of them timed"
        return f"each within {duration(evidence.bounded_max_s)} (only bounds)"
    seen = " seen" if "forks" in evidence.sampled else ""
    text = f"the slowest{seen} after {duration(evidence.max_s)}"
    if evidence.max_s >= SPREAD_FROM_S and evidence.p50_s is not None:
        text += f", half within {duration(evidence.p50_s)}"
    if evidence.bounded:
        bound = evidence.bounded_max_s
        within = "" if bound is None else f" within {duration(bound)}"
        text += f" ({evidence.bounded:,} more reaped too soon to be timed{within})"
    return text


def _by_adopters(evidence: EventEvidence) -> str:
    """ "(370 of them by PID 3442, outside its tree, which adopted them)": orphans reaped
    outside the tree; by the harness itself where it adopted them (a child subreaper)."""
    if not evidence.reaped_outside:
        return ""
    count = sum(holder.zombies for holder in evidence.reaped_outside)
    top = evidence.reaped_outside[0]
    others = len(evidence.reaped_outside) - 1
    more = f" and {plural(others, 'other')}" if others else ""
    slowest = "" if top.slowest_s is None else f", the slowest after {duration(top.slowest_s)}"
    if top.pid is not None and top.pid == evidence.recorder_pid:
        who = f"the harness itself (PID {top.pid}){more}, the child subreaper that adopted them"
        return f" ({count:,} of them by {who}{slowest})"
    return (
        f" ({count:,} of them by PID {top.pid}{more}, outside its tree, which adopted"
        f" them{slowest})"
    )


def _children_count(count: int) -> str:
    return f"{count:,} {'child' if count == 1 else 'children'}"


def _held(holders: tuple[Holder, ...], evidence: EventEvidence) -> str:
    """ ", held by PID 4242 (sh -c ...), a child of the process the harness started"; for a
    server run as PID 1, who must reap them ("the server itself, under tini: ...")."""
    if not holders:
        return ""
    top = holders[0]
    others = len(holders) - 1
    more = f", and {plural(others, 'other holder')}" if others > 0 else ""
    count = f"{top.zombies:,} " if others > 0 else ""
    pid1 = evidence.pid1
    if pid1 is not None and top.pid == pid1.server:
        return f", {count}held by {_the_server(pid1, top.command)}{more}"
    who = "a process the recorder could not name" if top.pid is None else f"PID {top.pid}"
    command = f" ({top.command})" if top.command else ""
    return f", {count}held by {who}{command}, {place(top.depth, evidence)}{more}"


def _the_server(pid1: Pid1, command: str) -> str:
    """The server run as PID 1 holding its own children's zombies, and why no init helps."""
    if pid1.itself:
        return (
            f"PID 1, the server itself (host PID {pid1.server}): its own children, which no"
            " init can reap while it lives"
        )
    inside = "" if pid1.server_nspid is None else f", PID {pid1.server_nspid} in its namespace"
    what = f" ({command}{inside})" if command else ""
    return (
        f"PID {pid1.server}{what}, the server itself, under {pid1.init}: their parent is alive"
        " and does not wait, so no init can reap them"
    )


def _orphans(evidence: EventEvidence) -> str | None:
    """What became of the orphans PID 1 adopted (a server run as PID 1): reaped by its init,
    or left as zombies by a server that is PID 1 itself and never waits for them."""
    pid1 = evidence.pid1
    if pid1 is None or not pid1.orphans:
        return None
    count, reaped = pid1.orphans, pid1.orphans_reaped
    slowest = (
        ""
        if pid1.orphans_slowest_s is None
        else f", the slowest after {duration(pid1.orphans_slowest_s)}"
    )
    orphans = plural(count, "orphan")
    if not pid1.itself:
        init = f"{pid1.init} (PID 1, host PID {pid1.pid1})"
        if reaped == count:
            return f"{orphans} adopted and reaped by {init}{slowest}"
        return f"{count - reaped:,} of the {orphans} {init} adopted not reaped when judged"
    holder = f"held by PID 1, the server itself (host PID {pid1.server}): an init would reap them"
    if reaped == 0:
        return f"{orphans} it was handed as PID 1 left as zombies, {holder}"
    if reaped == count:
        return f"{orphans} it was handed as PID 1, all reaped by it{slowest}"
    return (
        f"{count - reaped:,} of the {orphans} it was handed as PID 1 left as zombies, {holder};"
        f" it reaped the others{slowest}"
    )


def place(depth: int, evidence: EventEvidence) -> str:
    """Where in the tree a holder is, counted from the process the harness started (for a
    server run as PID 1, from PID 1 of its namespace, the server's or its init's)."""
    shell_wrapper = evidence.shell_wrapper
    pid1 = evidence.pid1
    if pid1 is not None:
        below = depth if pid1.itself else depth - 1  # the server is PID 1, or its init's child
        if below < 0:
            return f"{pid1.init}, PID 1 of the namespace"
        if below == 0:
            return "the server"
        return "a child of the server" if below == 1 else f"{below} levels below the server"
    if depth == 0:
        return "the process the harness started"
    if depth == 1 and shell_wrapper:
        return "the server the shell wrapper (sh -c) started"
    if depth == 1:
        return "a child of the process the harness started"
    return f"{depth} levels below the process the harness started"


def _handed_out(evidence: EventEvidence) -> str | None:
    """Orphans of the tree that were zombies outside it at the end, in their adopter's hands."""
    if not evidence.outside:
        return None
    count = sum(holder.zombies for holder in evidence.outside)
    top = evidence.outside[0]
    who = "a process the recorder could not name" if top.pid is None else f"PID {top.pid}"
    command = f" ({top.command})" if top.command else ""
    return (
        f"{plural(count, 'orphan')} of its tree left as zombies outside it, held by"
        f" {who}{command}, which adopted them"
    )


def _before(evidence: EventEvidence) -> str | None:
    """The zombies that were there before the load: not the load's doing."""
    if not evidence.before:
        return None
    there = plural(evidence.before, "zombie")
    verb = "was" if evidence.before == 1 else "were"
    if not evidence.before_left:
        return f"{there} there before the load {verb} reaped"
    held = _held(evidence.before_holders, evidence)
    left = "still there"
    if evidence.before_left != evidence.before:
        left = f"{evidence.before_left:,} left"
    return f"{there} there before the load (not its doing), {left}{held}"


def pool_verdict(evidence: EventEvidence) -> str | None:
    """A prefork pool's workers: retired and reaped, kept, and the new ones alive at the
    end, each named by its identity (PID and start), not by a count that held still."""
    pool = evidence.pool
    if pool is None or not pool.before or evidence.shell_wrapper:
        return None
    workers = "worker" if pool.before == 1 else "workers"
    if pool.retired:
        slowest = pool.slowest_retired_reap_s
        timed = "" if slowest is None else f" (slowest {duration(slowest)})"
        if pool.retired_reaped == pool.retired:
            done = f"retired and reaped{timed}"
        else:
            done = f"retired, {pool.retired - pool.retired_reaped:,} of them never reaped"
        text = (
            f"prefork pool: {pool.retired:,} of the {pool.before:,} {workers} there before"
            f" the load {done}, {pool.kept:,} kept"
        )
    else:
        text = f"prefork pool: the {pool.before:,} {workers} there before the load all kept"
    if pool.new_alive:
        of_them = "" if pool.new_alive == pool.new else f"{pool.new_alive:,} of them "
        text += f"; {pool.new:,} forked since, {of_them}alive at the end"
    return text + sampled_note(evidence)
