"""Who must reap a zombie, and what the fix is: the question a zombie in a container raises.

A zombie stays until its parent waits for it, and who that parent is decides the fix:

- its own parent, alive and not waiting: only that process can reap it. An init
  cannot help while the parent lives: orphans are the only children an init is given;
- PID 1 of its PID namespace, to which every orphan of the namespace is handed: when
  PID 1 is an application rather than an init, the fix is to run it behind an init;
- a child subreaper (``PR_SET_CHILD_SUBREAPER``), which is handed the orphans of its
  subtree in PID 1's place: it must wait for children it never started;
- an init that reaps: the zombie is new, and gone at the next look.

Everything comes from /proc, read from outside, so it works on the host and inside a
container alike (PIDs are those of the /proc read). Two facts /proc does not hold are
inferred, and every sentence built on one says so:

- whether a process is a child subreaper: no /proc field shows it. It is inferred from
  the program (one known to make itself one) or from what it holds: orphans, which
  only PID 1 and subreapers are handed.
- whether a zombie was adopted: /proc keeps its present parent only. A child starts in
  its parent's session; a zombie whose session is neither its own (it called setsid)
  nor its holder's began under another process, in another session: it is an orphan
  its holder adopted. (Wrong only for a parent that left its session after forking;
  an orphan from the holder's own session, as a plain ``cmd &`` leaves, cannot be
  told from the holder's own children, and is not counted.)

Whether a parent is seen reaping comes from doctor's watch: zombies of the first look
still there at the second were not reaped in between.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from diagnostics.errors import AccessDenied, NoSuchProcess
from diagnostics.procstatus import Action, cmdline, namespace_pids, read_status, sigchld_handling
from diagnostics.proctable import ProcStat, read_proc_file, read_stat, scan_all

KNOWN_INITS = frozenset(
    {
        "tini",
        "tini-static",
        "docker-init",  # tini, as docker run --init installs it
        "dumb-init",
        "catatonit",  # podman run --init
        "pause",  # Kubernetes' pod sandbox, PID 1 with shareProcessNamespace: true
        "systemd",
        "init",  # sysvinit, busybox
        "s6-svscan",
        "runit",
        "openrc-init",
        "dinit",
    }
)
"""Programs made to be PID 1 (or a subreaper) that reap every child they are handed."""

KNOWN_SUBREAPERS = frozenset({"containerd-shim", "conmon"})
"""Programs that make themselves child subreapers (containerd-shim-runc-v2's command name is
cut to containerd-shim's 15 characters)."""

FIX_INIT = (
    "run with an init (`docker run --init`, `tini`, `dumb-init`,"
    " Kubernetes `shareProcessNamespace: true`)"
)

Case = Literal[
    "pid1-not-init",
    "parent-not-waiting",
    "subreaper-not-waiting",
    "ignored-too-late",
    "parent-stopped",
    "init-not-reaping",
    "init-reaps",
    "reaps",
    "parent-outside",
]

CASES: dict[Case, tuple[str, str]] = {
    "pid1-not-init": ("PID 1 of a PID namespace, not an init", FIX_INIT),
    "parent-not-waiting": (
        "live parents that do not wait for their children",
        "each parent must wait() for its children: an init cannot help while the parent lives",
    ),
    "subreaper-not-waiting": (
        "child subreapers that do not wait for the orphans they are handed",
        "each must wait() for every child, not only those it started",
    ),
    "ignored-too-late": (
        "parents that ignore SIGCHLD now, holding zombies from before",
        "each must collect them once: waitpid(-1, WNOHANG) until it returns 0",
    ),
    "parent-stopped": ("stopped parents", "continue them (kill -CONT PID)"),
    "init-not-reaping": (
        "inits that did not reap during the watch",
        "find out why they do not reap: stopped, traced, or not an init that reaps",
    ),
    "init-reaps": ("inits, which reap", "this init reaps: the zombie is new, check again"),
    "reaps": ("parents seen reaping", "these reap: the zombies are new, check again"),
    "parent-outside": (
        "zombies whose parent is outside this PID namespace",
        "reap them from outside (the container runtime, or whatever ran docker exec or"
        " nsenter): nothing inside can",
    ),
}
"""Each case: (what its group is called in doctor --all, the fix for the whole group)."""

_STOPPED = ("T", "t")  # stopped by a signal, stopped by a tracer
_COMMAND_WIDTH = 48


@dataclass(frozen=True, slots=True)
class Reaper:
    """What /proc shows of a process that holds zombies, as the one that must reap them."""

    pid: int
    command: str
    state: str
    nspids: tuple[int, ...]
    """Its PID in each PID namespace, from the one of this /proc inward (NSpid)."""
    init: str | None
    """The known init this program is (KNOWN_INITS), or None."""
    known_subreaper: str | None
    """The known subreaper program this is (KNOWN_SUBREAPERS), or None."""
    sigchld: Action | None
    sigchld_blocked: bool | None
    session: int | None

    @property
    def pid1(self) -> bool | None:
        """PID 1 of its own PID namespace: the one every orphan there is handed to."""
        return self.nspids[-1] == 1 if self.nspids else None

    @property
    def named(self) -> str:
        """ "PID N (its command)", the command on one line and cut to a readable length."""
        command = " ".join(self.command.split())
        if len(command) > _COMMAND_WIDTH:
            command = command[: _COMMAND_WIDTH - 3] + "..."
        return f"PID {self.pid} ({command})"


@dataclass(frozen=True, slots=True)
class Answer:
    """Who must reap, why (the facts, inferences said), and the fix in one line."""

    case: Case
    reaper: int
    """The PID that must reap (or be continued, or be put behind an init)."""
    why: str
    fix: str


def read_reaper(pid: int) -> Reaper:
    """The facts about ``pid``. NoSuchProcess / AccessDenied if it cannot be read."""
    handling = sigchld_handling(pid)
    names = _program_names(pid)
    return Reaper(
        pid=pid,
        command=cmdline(pid),
        state=read_status(pid)["State"].split()[0],
        nspids=namespace_pids(pid),
        init=_first(names & KNOWN_INITS),
        known_subreaper=_first(names & KNOWN_SUBREAPERS),
        sigchld=None if handling is None else handling[0],
        sigchld_blocked=None if handling is None else handling[1],
        session=read_stat(pid).session,
    )


def _program_names(pid: int) -> set[str]:
    """The names the program goes by: its command name, its executable's and argv[0]'s
    file names (an init renamed by a runtime, as docker-init is tini, is known by one)."""
    names = {read_proc_file(f"/proc/{pid}/comm", pid).decode(errors="replace").strip()}
    try:
        names.add(os.path.basename(os.readlink(f"/proc/{pid}/exe")))
    except OSError:
        pass  # another user's process, or a kernel thread: no executable to see
    argv0 = read_proc_file(f"/proc/{pid}/cmdline", pid).split(b"\0")[0]
    names.add(os.path.basename(argv0.decode(errors="replace")))
    return names - {""}


def _first(names: set[str]) -> str | None:
    return min(names) if names else None


def adopted(zombies: Iterable[ProcStat], holder: Reaper) -> int:
    """How many of ``holder``'s zombies began in a session neither theirs nor its own:
    orphans it adopted (inferred, see the module's docstring).

    A session of 0 is one whose leader is outside this PID namespace (a container's,
    a CI sandbox's): a zombie in such a session cannot be told apart, but a holder in
    one still differs from every session this namespace can name."""
    if holder.session is None:
        return 0
    return sum(
        z.session is not None and z.session not in (0, z.pid, holder.session) for z in zombies
    )


def init_above(pid: int) -> tuple[int, str] | None:
    """The nearest ancestor of ``pid`` that is a known init, as (PID, name), or None."""
    try:
        ancestor = read_stat(pid).ppid
        while ancestor > 0:
            name = _first(_program_names(ancestor) & KNOWN_INITS)
            if name is not None:
                return ancestor, name
            ancestor = read_stat(ancestor).ppid
    except (NoSuchProcess, AccessDenied):
        pass
    return None


def decide(
    r: Reaper,
    zombies: int,
    orphans: int,
    stuck: int | None,
    watch: float,
    above: tuple[int, str] | None = None,
) -> Answer:
    """Who must reap the ``zombies`` that ``r`` holds, and the fix.

    ``orphans``: how many were adopted (inferred, :func:`adopted`); ``stuck``: how many
    were there at both looks of a ``watch`` of that many seconds (None: no watch, or no
    zombie at the first look, so no reaping could be seen); ``above``: the nearest init
    above ``r`` (:func:`init_above`).
    """
    who = r.named
    if r.state in _STOPPED:
        return Answer(
            "parent-stopped",
            r.pid,
            f"{who} is stopped (state {r.state}): it runs no handler and no wait",
            f"continue it (kill -CONT {r.pid}), or end whatever stopped it (a debugger, a"
            " job control stop)",
        )
    if stuck == 0:
        what = "this init reaps: the zombie is new" if r.init else "it reaps: the zombies are new"
        return Answer(
            "reaps",
            r.pid,
            f"{who} reaped every zombie it held {watch:g} s ago; the {zombies:,} now are new",
            f"{what}, check again",
        )
    if r.sigchld == "ignored":
        return Answer(
            "ignored-too-late",
            r.pid,
            f"{who} ignores SIGCHLD now, so the kernel reaps its children that exit from now"
            f" on; these {zombies:,} exited before it did so, and the kernel leaves them",
            f"its parent PID {r.pid} must collect them once (waitpid(-1, WNOHANG) until it"
            " returns 0): an init cannot help while the parent lives",
        )
    if r.init is not None:
        return _init_answer(r, stuck, watch)
    adoption = _adoption(zombies, orphans)
    if r.pid1:
        own = "" if orphans == zombies else "; any that are its own children it must wait() for too"
        return Answer(
            "pid1-not-init",
            r.pid,
            f"{who} is PID 1 of its PID namespace (NSpid {_nspids(r)}) and not an init: every"
            f" orphan of the namespace is handed to it, and it does not wait for them"
            f"{adoption}{own}",
            FIX_INIT,
        )
    if r.known_subreaper is not None or orphans:
        evidence = (
            f"{r.known_subreaper} makes itself one"
            if r.known_subreaper is not None
            else "inferred: only PID 1 and subreapers are handed orphans"
        )
        return Answer(
            "subreaper-not-waiting",
            r.pid,
            f"{who} is a child subreaper ({evidence}): the orphans of its subtree are handed to"
            f" it, and it does not wait for them{adoption}",
            f"PID {r.pid} must wait() for every child, not only those it started"
            " (waitpid(-1, WNOHANG) until it returns 0): an init cannot help while it lives",
        )
    blocked = ", SIGCHLD blocked on every thread" if r.sigchld_blocked else ""
    under = "" if above is None else f"; it runs under init PID {above[0]} ({above[1]}),"
    under += "" if above is None else " which is handed orphans only"
    return Answer(
        "parent-not-waiting",
        r.pid,
        f"{who} is alive and does not wait for its children{blocked}{under}",
        f"its parent {who} must wait() for it: an init cannot help while the parent lives",
    )


def _init_answer(r: Reaper, stuck: int | None, watch: float) -> Answer:
    role = "PID 1 of its PID namespace and " if r.pid1 else ""
    if stuck is None:
        return Answer(
            "init-reaps",
            r.pid,
            f"{r.named} is {role}an init ({r.init}), which reaps every child it is handed",
            CASES["init-reaps"][1],
        )
    return Answer(
        "init-not-reaping",
        r.pid,
        f"{r.named} is {role}an init ({r.init}), yet {stuck:,} of its zombies were still"
        f" there after {watch:g} s",
        f"find out why init PID {r.pid} does not reap: stopped, traced, or an init that does"
        " not (a pause container once did not)",
    )


def _adoption(zombies: int, orphans: int) -> str:
    if not orphans:
        return "; /proc cannot tell adopted orphans from its own children here"
    share = "all" if orphans == zombies else f"{orphans:,} of the {zombies:,}"
    return (
        f"; {share} are orphans it adopted (inferred: each began in a session neither its"
        " own nor its present parent's)"
    )


def _nspids(r: Reaper) -> str:
    return " ".join(map(str, r.nspids))


def examine(
    pid: int, zombies: list[ProcStat], first: set[int] | None, watch: float
) -> dict[str, Any]:
    """doctor's fields for the parent ``pid`` holding ``zombies`` (its true zombies at the
    last look); ``first``: the zombie PIDs of the first look (None without a watch)."""
    r = read_reaper(pid)
    orphans = adopted(zombies, r)
    fields: dict[str, Any] = {
        "state": r.state,
        "nspid": list(r.nspids),
        "init": r.init,
        "subreaper": _subreaper(r, orphans),
        "sigchld_blocked": r.sigchld_blocked,
        "adopted": orphans,
        "init_above": None,
        "who_reaps": None,
    }
    if zombies:
        above = init_above(pid)
        stuck = len(first & {z.pid for z in zombies}) if first else None
        fields["init_above"] = None if above is None else {"pid": above[0], "name": above[1]}
        fields["who_reaps"] = asdict(decide(r, len(zombies), orphans, stuck, watch, above))
    return fields


def _subreaper(r: Reaper, orphans: int) -> str | None:
    """Why ``r`` is thought a child subreaper (always an inference), or None."""
    if r.known_subreaper is not None:
        return f"inferred: {r.known_subreaper} makes itself one"
    if orphans and not r.pid1:
        return f"inferred: it holds {orphans:,} adopted orphans"
    return None


def describe(report: dict[str, Any]) -> str:
    """One line on what the process is as a reaper: namespace, init, subreaper."""
    nspid = report.get("nspid") or []
    parts = [
        f"PID 1 of its PID namespace (NSpid {' '.join(map(str, nspid))})"
        if nspid and nspid[-1] == 1
        else "not PID 1 of its PID namespace"
    ]
    parts.append(f"a known init ({report['init']})" if report.get("init") else "not a known init")
    if report.get("subreaper"):
        parts.append(f"a child subreaper ({report['subreaper']})")
    if report.get("state") in _STOPPED:
        parts.append(f"stopped (state {report['state']})")
    return ", ".join(parts)


def outside_namespace() -> int:
    """Zombies whose parent is outside the PID namespace of this /proc (PPid 0)."""
    return sum(st.zombie and st.ppid == 0 for st in scan_all().values())


def groups(reports: list[dict[str, Any]], outside: int = 0) -> list[dict[str, Any]]:
    """doctor --all: the zombies grouped by who must reap them, most zombies first."""
    by_case: dict[Case, dict[str, Any]] = {}
    for report in reports:
        answer = report.get("who_reaps")
        if answer is None:
            continue
        case: Case = answer["case"]
        title, fix = CASES[case]
        group = by_case.setdefault(
            case, {"case": case, "title": title, "fix": fix, "reapers": [], "zombies": 0}
        )
        group["reapers"].append(answer["reaper"])
        group["zombies"] += report["zombies"]
    if outside:
        title, fix = CASES["parent-outside"]
        by_case["parent-outside"] = {
            "case": "parent-outside",
            "title": title,
            "fix": fix,
            "reapers": [],
            "zombies": outside,
        }
    return sorted(by_case.values(), key=lambda g: -g["zombies"])


def render_groups(found: list[dict[str, Any]]) -> str:
    """The human form of :func:`groups`."""
    total = sum(g["zombies"] for g in found)
    lines = [f"who must reap the {total:,} zombies here:"]
    for g in found:
        reapers = ", ".join(f"PID {pid}" for pid in g["reapers"])
        lines.append(f"  {g['zombies']:,} zombies: {g['title']}{': ' if reapers else ''}{reapers}")
        lines.append(f"    fix: {g['fix']}")
    return "\n".join(lines)
