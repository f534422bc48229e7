"""The zombie doctor: what someone who suspects a zombie leak wants to know about a
parent, and what to do about it, in a few lines (or JSON for machines).

A parent is sampled twice, ``watch`` seconds apart, with the same
:class:`~diagnostics.sampler.Sampler` the harness uses: the counts come from the
second sample, the growth rate and the number reaped meanwhile from the pair.

Who must reap them, and the fix, comes from :mod:`diagnostics.whoreaps`: whether the
parent is PID 1 of its PID namespace, an init, a child subreaper, stopped, or a live
process that does not wait. ``doctor ZOMBIE_PID`` answers for one zombie: the report
is its parent's.

``oldest_zombie_s`` is the age since the oldest zombie child STARTED: /proc keeps a
process's start time but not the time it died, so that is the best bound /proc
gives (a zombie has been dead at most that long).

Not every process in state Z is a zombie. When the main thread of a multi-threaded
process exits on its own (``pthread_exit``, the raw ``exit`` system call), the
kernel shows the process as Z (``ps``: ``Zl``) while its other threads run on, and
waitpid returns 0 for it until the last of them ends: it is alive, and no reaping
loop can collect it. The doctor counts such a child as alive, names it under
``main_thread_exited``, and gives no waitpid advice for it.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from diagnostics import inherited, outlook, whoreaps
from diagnostics.errors import AccessDenied, DiagnosticsError, NoSuchProcess, ZombieProcess
from diagnostics.procstatus import cmdline, namespace_pid, read_status, sigchld_disposition
from diagnostics.proctable import ProcStat, decode_exit_status, list_dir, read_stat, scan_all
from diagnostics.sampler import Sample, Sampler

Report = dict[str, Any]

_FIX = {
    "default": (
        "SIGCHLD at default. Install a SIGCHLD handler that loops waitpid(-1, WNOHANG) "
        "until it returns 0, or reap in the main loop."
    ),
    "caught": (
        "SIGCHLD caught by a handler that does not reap them all. Make it loop "
        "waitpid(-1, WNOHANG) until it returns 0: signals are not queued, so one SIGCHLD "
        "can stand for many children."
    ),
    "blocked": (
        "SIGCHLD blocked on every thread, so no handler runs. Unblock it, or reap in "
        "the main loop (waitpid(-1, WNOHANG) until it returns 0, or sigwaitinfo/signalfd)."
    ),
    "ignored": (
        "SIGCHLD ignored, so the kernel reaps children that exit from now on; these "
        "exited before. Collect them once with a waitpid(-1, WNOHANG) loop."
    ),
}
_FIX_UNKNOWN = (
    "SIGCHLD handling unknown. Reap with waitpid(-1, WNOHANG) in a loop until it returns 0."
)
_SIGCHLD_ADVICE_HOLDS = ("parent-not-waiting", "ignored-too-late")
"""The who-reaps cases where the fix is the parent's own reaping, which _FIX details; in
the others the verdict gives the who-reaps fix (an init, a subreaper's wait, ...)."""


class MainThreadExited(DiagnosticsError):
    """The PID asked about shows as a zombie but is not one: threads of it still run."""

    def __init__(self, pid: int, threads: int) -> None:
        self.pid = pid
        self.threads = threads
        super().__init__(
            f"PID {pid} is alive, not a zombie: {_main_thread_exited(threads)} (ps shows Zl;"
            " waitpid returns 0 for it until the last one ends, so there is nothing to reap yet)"
        )


class ParentOutside(DiagnosticsError):
    """The zombie asked about has its parent outside this PID namespace: no report to give."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        fix = whoreaps.CASES["parent-outside"][1]
        super().__init__(f"PID {pid} is a zombie whose parent is outside this PID namespace: {fix}")


@dataclass(slots=True)
class _Watch:
    """One parent under observation: its sampler and first sample."""

    pid: int
    sampler: Sampler
    first: Sample
    first_zombies: set[int]
    first_not_dead: int
    """Children of the first sample in state Z whose other threads still ran."""


def examine(pid: int, watch: float) -> Report:
    """Report on one parent; for a zombie, on its parent, the one that must reap it (the
    report's ``zombie`` names it). Raises NoSuchProcess / AccessDenied when it cannot be
    read (including when it exits during the watch), MainThreadExited when ``pid`` itself
    is a process whose main thread exited while others run, ParentOutside for a zombie
    whose parent is outside this PID namespace.
    """
    try:
        return _examine([pid], watch, skip_unreadable=False)[0]
    except ZombieProcess:
        threads = threads_still_running(pid)
        if threads:
            raise MainThreadExited(pid, threads) from None
        return _examine_zombie(pid, watch)


def _examine_zombie(pid: int, watch: float) -> Report:
    zombie = read_stat(pid)
    if zombie.ppid == 0:
        raise ParentOutside(pid)
    report = examine(zombie.ppid, watch)
    parent = whoreaps.read_reaper(zombie.ppid)
    status = zombie.exit_status if _status_visible(zombie) else None
    report["zombie"] = {
        "pid": pid,
        "exit_code": None if status is None else decode_exit_status(status),
        "adopted": whoreaps.adopted([zombie], parent) == 1,
    }
    return report


def threads_still_running(pid: int) -> int:
    """How many threads of a process in state Z still run: 0 for a true zombie.

    /proc/PID/status ``Threads`` counts the thread group with its exited main
    thread (a true zombie shows 1); /proc/PID/task lists the threads, so the
    ones still running are those other than PID itself. Gone or unreadable: 0.
    """
    try:
        if int(read_status(pid).get("Threads", "1")) <= 1:
            return 0
        return sum(tid != str(pid) for tid in list_dir(f"/proc/{pid}/task", pid))
    except (NoSuchProcess, AccessDenied, ValueError):
        return 0


def _main_thread_exited(threads: int) -> str:
    return f"main thread exited, {threads} thread{'s' if threads != 1 else ''} still running"


def examine_all(watch: float) -> list[Report]:
    """Reports on every parent that holds zombies, most zombies first. Parents that
    exit or cannot be read meanwhile are left out.
    """
    parents = {st.ppid for st in scan_all().values() if st.zombie}
    reports = [r for r in _examine(sorted(parents), watch, skip_unreadable=True) if r["zombies"]]
    return sorted(reports, key=lambda r: (-r["zombies"], r["pid"]))


def _examine(pids: Iterable[int], watch: float, *, skip_unreadable: bool) -> list[Report]:
    """Sample every parent, wait ``watch`` seconds once for all, sample again, report."""
    skipped = (NoSuchProcess, AccessDenied) if skip_unreadable else ()
    watches = []
    for pid in pids:
        try:
            sampler = Sampler(pid)
            first = sampler.sample()
        except skipped:
            continue
        zombies = sampler.zombie_children()
        not_dead = sum(threads_still_running(st.pid) > 0 for st in zombies)
        watches.append(_Watch(pid, sampler, first, _pids(zombies), not_dead))
    if watch > 0:
        time.sleep(watch)
    shared = _shared_limits()
    reports = []
    for w in watches:
        try:
            reports.append(_report(w, watch, shared))
        except skipped:
            continue
    return reports


def _shared_limits() -> outlook.Shared | None:
    """The machine's PID limits, read once for every parent; None where /proc has none."""
    try:
        return outlook.Shared()
    except OSError:
        return None


def _report(w: _Watch, watch: float, shared: outlook.Shared | None) -> Report:
    last = w.sampler.sample() if watch > 0 else w.first
    zombies, not_dead = [], []
    for st in w.sampler.zombie_children():
        threads = threads_still_running(st.pid)
        if threads:
            not_dead.append({"pid": st.pid, "threads": threads})
        else:
            zombies.append(st)
    first_zombies = w.first.zombies - w.first_not_dead
    span = last.elapsed - w.first.elapsed
    ns_pid = namespace_pid(w.pid)
    report: Report = {
        "pid": w.pid,
        "cmdline": cmdline(w.pid),
        "alive": last.alive + len(not_dead),
        "zombies": len(zombies),
        "descendant_zombies": last.descendant_zombies,
        "oldest_zombie_s": _oldest_age(zombies),
        "growth_per_s": round((len(zombies) - first_zombies) / span, 1) if span > 0 else None,
        "exit_codes": _exit_codes(zombies),
        "sigchld": sigchld_disposition(w.pid),
        "pid1": None if ns_pid is None else ns_pid == 1,
        "watch_s": watch,
        "reaped_during_watch": len(w.first_zombies - _pids(zombies)) if watch > 0 else None,
        "main_thread_exited": not_dead,
    }
    first = w.first_zombies if watch > 0 else None
    report.update(whoreaps.examine(w.pid, zombies, first, watch))
    ahead = (
        None if shared is None else outlook.outlook(w.pid, report["growth_per_s"], watch, shared)
    )
    report["pid_limit"] = None if ahead is None else ahead.to_json()
    report["pid_limit_text"] = None if ahead is None else ahead.sentence()
    report["verdict"] = verdict(report)
    report["inherited"] = _inherited(w.pid)
    return report


def _inherited(pid: int) -> inherited.Section | None:
    """Descriptors its children should not hold (diagnostics.inherited); None if unreadable."""
    try:
        return inherited.examine(pid)
    except AccessDenied:
        return None


def _pids(stats: Iterable[ProcStat]) -> set[int]:
    return {st.pid for st in stats}


def _oldest_age(zombies: list[ProcStat]) -> float | None:
    if not zombies:
        return None
    return round(max(0.0, time.time() - min(st.started for st in zombies)), 1)


def _exit_codes(zombies: list[ProcStat]) -> dict[str, int]:
    """Zombies' exit statuses grouped as "0", "1", "SIGKILL"...; "unknown" where the
    kernel hides them (it shows 0 to readers that may not ptrace the zombie).
    """
    counts = Counter(
        "unknown"
        if st.exit_status is None or not _status_visible(st)
        else decode_exit_status(st.exit_status)
        for st in zombies
    )
    return dict(counts.most_common())


def _status_visible(st: ProcStat) -> bool:
    if os.geteuid() == 0:
        return True
    try:
        return os.stat(f"/proc/{st.pid}").st_uid == os.geteuid()
    except OSError:
        return False


def _rate(growth: float) -> str:
    return f"{growth:+,.0f}/s" if abs(growth) >= 10 or growth == int(growth) else f"{growth:+.1f}/s"


def verdict(r: Report) -> str:
    """One sentence on what is wrong and the fix, from a report's figures."""
    pid, zombies, deeper = r["pid"], r["zombies"], r["descendant_zombies"]
    text = _zombie_verdict(r) if zombies else _deeper_verdict(pid, deeper)
    for child in r.get("main_thread_exited") or []:
        text += "; " if text == "no zombies" else " "
        text += (
            f"PID {child['pid']} shows as a zombie (ps: Zl) but is alive:"
            f" {_main_thread_exited(child['threads'])}, and waitpid collects it only"
            " after its last thread ends."
        )
    return text


def _deeper_verdict(pid: int, deeper: int) -> str:
    if deeper == 0:
        return "no zombies"
    # Seen at the last look only: a descendant that reaps holds a few new ones at times.
    return (
        f"PID {pid} has no zombie children, but its descendants hold {deeper:,}. Run"
        " `python -m diagnostics doctor --all` to find which parent holds them, and whether"
        " it reaps."
    )


def _zombie_verdict(r: Report) -> str:
    pid, zombies, deeper = r["pid"], r["zombies"], r["descendant_zombies"]
    growth = "" if r["growth_per_s"] is None else f", {_rate(r['growth_per_s'])}"
    if r["reaped_during_watch"] is None:
        head = f"PID {pid} holds"
    elif r["reaped_during_watch"] == 0:
        head = f"PID {pid} never reaps:"
    else:
        head = f"PID {pid} reaps too little ({r['reaped_during_watch']:,} during the watch):"
    who = r.get("who_reaps")
    if who is not None and who["case"] not in _SIGCHLD_ADVICE_HOLDS:
        text = f"PID {pid} holds {zombies:,} zombie children{growth}: {who['fix']}."
    else:
        text = f"{head} {zombies:,} zombie children{growth}"
        text += f", {_FIX.get(r['sigchld'], _FIX_UNKNOWN)}"
    if deeper:
        text += f" Its descendants hold {deeper:,} more."
    return text


def _shorten(text: str, width: int = 160) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def render(r: Report) -> str:
    """The human form of a report: a few lines ending with the verdict."""
    ns = " (PID 1 of its namespace)" if r["pid1"] else ""
    oldest = (
        "" if r["oldest_zombie_s"] is None else f", oldest started {r['oldest_zombie_s']:,} s ago"
    )
    lines = [
        f"PID {r['pid']}{ns}: {_shorten(r['cmdline'])}",
        f"  children: {r['alive']:,} alive, {r['zombies']:,} zombies{oldest};"
        f" zombies deeper down: {r['descendant_zombies']:,}",
    ]
    if r["exit_codes"]:
        codes = ", ".join(f"{code} x{n:,}" for code, n in r["exit_codes"].items())
        lines.append(f"  zombie exit codes: {codes}")
    for child in r.get("main_thread_exited") or []:
        lines.append(f"  PID {child['pid']} (ps: Zl): {_main_thread_exited(child['threads'])}")
    watched = ""
    if r["growth_per_s"] is not None:
        watched = (
            f"; over {r['watch_s']:g} s: {_rate(r['growth_per_s'])},"
            f" {r['reaped_during_watch']:,} reaped"
        )
    lines.append(f"  SIGCHLD: {r['sigchld'] or 'unknown'}{watched}")
    lines.append(f"  as a reaper: {whoreaps.describe(r)}")
    if r["who_reaps"] is not None:
        lines.append(f"  who must reap: {r['who_reaps']['why']}")
        lines.append(f"  fix: {r['who_reaps']['fix']}")
    lines.extend(inherited.render_lines(r.get("inherited")))
    if r.get("pid_limit_text"):
        lines.append(f"  PID limit: {r['pid_limit_text']}")
    lines.append(f"  verdict: {r['verdict']}")
    asked = r.get("zombie")
    if asked is not None:
        ended = "" if asked["exit_code"] is None else f", exit status {asked['exit_code']}"
        orphan = ", an orphan it adopted (inferred)" if asked["adopted"] else ""
        lines.insert(0, f"PID {asked['pid']} is a zombie{ended}{orphan}; its parent must reap it:")
    return "\n".join(lines)
