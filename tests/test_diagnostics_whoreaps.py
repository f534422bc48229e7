"""doctor's "who must reap this?" on real processes: PID 1 of a PID namespace that never
waits, the same under dumb-init and tini, a live parent that never waits (under an init
and not), an orphan adopted by a child subreaper, a parent that ignores SIGCHLD too
late, a stopped init. Namespaces come from loadtest.pidns; tests that need one skip,
with the kernel's reason, where none can be made.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.holder import HolderSpec, ZombieHolder
from diagnostics import whoreaps
from diagnostics.doctor import examine, render
from loadtest import pidns
from tests import diag_helpers as h
from tests import pidns_helpers as ns

COUNT = 3

# Makes orphans the way `cmd &` (or, with "setsid", a daemon's double fork) does: each
# middle child forks a grandchild and exits; the grandchild exits once its parent has
# (its pipe's only writer is gone). The middles are waited for, by PID: the program
# waits for the children it started and for no other, as most programs do. It prints
# "made" and, once every orphan has been reaped by someone (its /proc entry gone),
# "gone". With "on-usr1" it starts when SIGUSR1 comes.
MAKE_ORPHANS = r"""
import os, signal, sys, time

def make_orphans(count, setsid):
    report_r, report_w = os.pipe()
    for _ in range(count):
        middle = os.fork()
        if middle == 0:
            if setsid:
                os.setsid()
            parent_gone, parent_alive = os.pipe()
            orphan = os.fork()
            if orphan == 0:
                os.close(parent_alive)
                os.read(parent_gone, 1)
                os._exit(0)
            os.write(report_w, b"%d\n" % orphan)
            os._exit(0)
        os.waitpid(middle, 0)
    os.close(report_w)
    return [int(pid) for pid in os.read(report_r, 65536).split()]

def until_reaped(orphans):
    while any(os.path.exists(f"/proc/{pid}") for pid in orphans):
        time.sleep(0.005)
"""

IN_NAMESPACE = (
    MAKE_ORPHANS
    + r"""
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
count, how, start = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if start == "on-usr1":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    print("waiting", flush=True)
    signal.sigwait({signal.SIGUSR1})
orphans = make_orphans(count, how == "setsid")
print("made", flush=True)
until_reaped(orphans)
print("gone", flush=True)
while True:
    signal.pause()
"""
)

# A child subreaper on the host that adopts its own orphans and never waits for them;
# it lives until its stdin closes, then reaps everything.
SUBREAPER = (
    MAKE_ORPHANS
    + r"""
import ctypes
assert ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
orphans = make_orphans(int(sys.argv[1]), setsid=True)
for pid in orphans:
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
print("ready", flush=True)
sys.stdin.buffer.read()
for pid in orphans:
    os.waitpid(pid, 0)
"""
)

# Children that exit and are never waited for; in a namespace it ends on SIGTERM, and its
# zombies go to the init, which reaps them.
NEVER_WAITS = r"""
import os, signal, sys
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
children = [os.fork() or os._exit(0) for _ in range(int(sys.argv[1]))]
for pid in children:
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
print("ready", flush=True)
while True:
    signal.pause()
"""

# Children that exited while SIGCHLD was at its default, then SIGCHLD ignored: the kernel
# leaves those zombies. On stdin EOF it sets SIGCHLD back and reaps them.
IGNORES_TOO_LATE = r"""
import os, signal, sys
children = [os.fork() or os._exit(0) for _ in range(int(sys.argv[1]))]
for pid in children:
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
print("ready", flush=True)
sys.stdin.buffer.read()
signal.signal(signal.SIGCHLD, signal.SIG_DFL)
for pid in children:
    os.waitpid(pid, 0)
"""


def wait_for_zombies(pid: int, count: int) -> None:
    h.wait_until(lambda: len(ns.zombie_children(pid)) == count, what=f"{count} zombies of {pid}")


def answer(report: dict) -> dict:
    assert report["who_reaps"] is not None, report
    return report["who_reaps"]


@pytest.mark.parametrize("how", ["setsid", "plain"])
def test_pid1_of_a_namespace_that_never_waits_must_run_under_an_init(
    tmp_path: Path, how: str
) -> None:
    with ns.running(IN_NAMESPACE, str(COUNT), how, "now", log=tmp_path / "log") as pid1:
        assert ns.said(tmp_path / "log", 1) == ["made"]
        wait_for_zombies(pid1.pid1, COUNT)
        report = examine(pid1.pid1, 0.2)
    assert (report["zombies"], report["pid1"], report["init"]) == (COUNT, True, None)
    who = answer(report)
    assert (who["case"], who["reaper"], who["fix"]) == (
        "pid1-not-init",
        pid1.pid1,
        whoreaps.FIX_INIT,
    )
    assert (
        report["verdict"] == f"PID {pid1.pid1} holds 3 zombie children, +0/s: {whoreaps.FIX_INIT}."
    )
    if how == "setsid":  # a daemon's double fork: the orphans are known as such
        assert report["adopted"] == COUNT
        assert "; all are orphans it adopted (inferred:" in who["why"]
    else:  # a plain `cmd &`: /proc cannot tell them from PID 1's own children
        assert report["adopted"] == 0
        assert "/proc cannot tell adopted orphans from its own children" in who["why"]
        assert who["why"].endswith("any that are its own children it must wait() for too")


def test_all_groups_the_namespace_zombies_under_pid1_and_says_the_fix(tmp_path: Path) -> None:
    with ns.running(IN_NAMESPACE, str(COUNT), "setsid", "now", log=tmp_path / "log") as pid1:
        ns.said(tmp_path / "log", 1)
        wait_for_zombies(pid1.pid1, COUNT)
        result = h.run_cli("doctor", "--all", "--watch", "0", "--json")
        text = h.run_cli("doctor", "--all", "--watch", "0").stdout
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    group = next(g for g in found["groups"] if g["case"] == "pid1-not-init")
    assert pid1.pid1 in group["reapers"] and group["fix"] == whoreaps.FIX_INIT
    mine = next(p for p in found["parents"] if p["pid"] == pid1.pid1)
    assert (mine["zombies"], mine["who_reaps"]["case"]) == (COUNT, "pid1-not-init")
    assert text.startswith("who must reap the ")
    assert f"PID 1 of a PID namespace, not an init: PID {pid1.pid1}" in text


def test_doctor_on_one_zombie_names_its_parent_and_the_fix(tmp_path: Path) -> None:
    with ns.running(IN_NAMESPACE, str(COUNT), "setsid", "now", log=tmp_path / "log") as pid1:
        ns.said(tmp_path / "log", 1)
        wait_for_zombies(pid1.pid1, COUNT)
        zombie = min(ns.zombie_children(pid1.pid1))
        result = h.run_cli("doctor", str(zombie), "--watch", "0")
        report = examine(zombie, 0)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"PID {zombie} is a zombie, exit status 0, an orphan it adopted (inferred);"
        " its parent must reap it:"
    )
    assert f"  fix: {whoreaps.FIX_INIT}" in lines
    assert report["pid"] == pid1.pid1
    assert report["zombie"] == {"pid": zombie, "exit_code": "0", "adopted": True}


def test_doctor_inside_the_container_gives_the_same_answer(tmp_path: Path) -> None:
    """Run where the container's processes run: its own /proc, where PID 1 is 1."""
    if shutil.which("nsenter") is None:
        pytest.skip("nsenter (util-linux) is not installed")
    with ns.running(IN_NAMESPACE, str(COUNT), "setsid", "now", log=tmp_path / "log") as pid1:
        ns.said(tmp_path / "log", 1)
        wait_for_zombies(pid1.pid1, COUNT)
        inside = subprocess.run(
            ["nsenter", "-t", str(pid1.pid1), "-p", "-m", f"--wd={h.REPO}", "--",
             sys.executable, "-m", "diagnostics", "doctor", "--all", "--watch", "0", "--json"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(h.REPO)},
        )  # fmt: skip
    assert inside.returncode == 0, inside.stderr
    (report,) = json.loads(inside.stdout)["parents"]
    assert (report["pid"], report["nspid"], report["zombies"]) == (1, [1], COUNT)
    assert report["who_reaps"]["case"] == "pid1-not-init"
    assert report["who_reaps"]["fix"] == whoreaps.FIX_INIT


@pytest.mark.parametrize("init", ["dumb-init", "tini"])
def test_under_an_init_the_orphans_are_reaped_and_doctor_knows_the_init(
    tmp_path: Path, init: pidns.Init
) -> None:
    log = tmp_path / "log"
    with ns.running(IN_NAMESPACE, str(COUNT), "setsid", "now", init=init, log=log) as pid1:
        assert ns.said(log, 2) == ["made", "gone"]  # the orphans came to the init, which reaped
        report = examine(pid1.pid1, 0)
        text = render(report)
    assert (report["zombies"], report["pid1"], report["init"]) == (0, True, init)
    assert report["who_reaps"] is None and report["verdict"] == "no zombies"
    nspid = " ".join(map(str, report["nspid"]))
    assert (
        f"  as a reaper: PID 1 of its PID namespace (NSpid {nspid}), a known init ({init})"
        in text.splitlines()
    )


def test_a_zombie_under_a_running_init_is_new(tmp_path: Path) -> None:
    """An init reaps within moments, so a zombie under one cannot be held for a test: the
    facts are read from a real tini, the zombie is said to be there."""
    with ns.running(IN_NAMESPACE, "0", "plain", "now", init="tini", log=tmp_path / "log") as pid1:
        facts = whoreaps.read_reaper(pid1.pid1)
    # (Its SIGCHLD reads as default and unblocked: sigtimedwait unblocks what it waits for.)
    assert (facts.pid1, facts.init) == (True, "tini")
    unwatched = whoreaps.decide(facts, zombies=1, orphans=0, stuck=None, watch=0)
    assert (unwatched.case, unwatched.fix) == (
        "init-reaps",
        "this init reaps: the zombie is new, check again",
    )
    seen_reaping = whoreaps.decide(facts, zombies=1, orphans=0, stuck=0, watch=2)
    assert (seen_reaping.case, seen_reaping.fix) == (
        "reaps",
        "this init reaps: the zombie is new, check again",
    )
    not_reaping = whoreaps.decide(facts, zombies=1, orphans=0, stuck=1, watch=2)
    assert not_reaping.case == "init-not-reaping"


def test_a_stopped_init_reaps_nothing_until_continued(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with ns.running(IN_NAMESPACE, "1", "setsid", "on-usr1", init="tini", log=log) as pid1:
        assert ns.said(log, 1) == ["waiting"]
        os.kill(pid1.pid1, signal.SIGSTOP)
        try:
            os.kill(pid1.command, signal.SIGUSR1)
            assert ns.said(log, 2)[1] == "made"
            wait_for_zombies(pid1.pid1, 1)
            report = examine(pid1.pid1, 0.2)
        finally:
            os.kill(pid1.pid1, signal.SIGCONT)
        assert ns.said(log, 3)[2] == "gone"  # continued, it reaped
    who = answer(report)
    assert (who["case"], who["reaper"]) == ("parent-stopped", pid1.pid1)
    assert who["fix"].startswith(f"continue it (kill -CONT {pid1.pid1})")
    assert report["verdict"].startswith(f"PID {pid1.pid1} holds 1 zombie children, +0/s: continue")


def test_a_live_parent_that_never_waits_must_wait_itself() -> None:
    with ZombieHolder(HolderSpec.zombies(COUNT)) as holder:
        report = examine(holder.pid, 0.2)
    who = answer(report)
    assert (who["case"], who["reaper"]) == ("parent-not-waiting", holder.pid)
    assert who["fix"].startswith(f"its parent PID {holder.pid} (")
    assert who["fix"].endswith(") must wait() for it: an init cannot help while the parent lives")
    assert report["verdict"].startswith(f"PID {holder.pid} never reaps: 3 zombie children")


def test_under_an_init_a_live_parent_must_still_wait(tmp_path: Path) -> None:
    """Our `none` server's case behind docker run --init: the init gets orphans only."""
    log = tmp_path / "log"
    with ns.running(NEVER_WAITS, str(COUNT), init="dumb-init", log=log) as pid1:
        ns.said(log, 1)
        report = examine(pid1.command, 0.2)
    who = answer(report)
    assert (who["case"], who["reaper"]) == ("parent-not-waiting", pid1.command)
    assert report["init_above"] == {"pid": pid1.pid1, "name": "dumb-init"}
    under = f"it runs under init PID {pid1.pid1} (dumb-init), which is handed orphans only"
    assert under in who["why"]
    assert who["fix"].endswith("must wait() for it: an init cannot help while the parent lives")


def examined(program: str) -> dict:
    """doctor's report on a helper ``program`` on the host, once it is ready; it is then
    released (it reaps what it made)."""
    proc = h.spawn(program, str(COUNT))
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        return examine(proc.pid, 0.2)
    finally:
        h.end_by_stdin(proc)


def test_an_orphan_adopted_by_a_subreaper_is_the_subreapers_to_reap() -> None:
    report = examined(SUBREAPER)
    who, pid = answer(report), report["pid"]
    assert (who["case"], who["reaper"], report["adopted"]) == ("subreaper-not-waiting", pid, COUNT)
    assert report["subreaper"] == f"inferred: it holds {COUNT} adopted orphans"
    evidence = "is a child subreaper (inferred: only PID 1 and subreapers are handed orphans)"
    assert evidence in who["why"]
    assert who["fix"] == (
        f"PID {pid} must wait() for every child, not only those it started"
        " (waitpid(-1, WNOHANG) until it returns 0): an init cannot help while it lives"
    )


def test_a_parent_that_ignores_sigchld_too_late_must_collect_them_once() -> None:
    report = examined(IGNORES_TOO_LATE)
    assert (report["sigchld"], report["zombies"]) == ("ignored", COUNT)
    who, pid = answer(report), report["pid"]
    assert (who["case"], who["reaper"]) == ("ignored-too-late", pid)
    assert "these 3 exited before it did so, and the kernel leaves them" in who["why"]
    assert who["fix"] == (
        f"its parent PID {pid} must collect them once (waitpid(-1, WNOHANG) until it"
        " returns 0): an init cannot help while the parent lives"
    )
    old_advice = "SIGCHLD ignored, so the kernel reaps children that exit from now on"
    assert old_advice in report["verdict"]


def test_a_parent_without_zombies_is_still_described() -> None:
    report = examine(os.getpid(), 0)
    assert report["who_reaps"] is None and report["verdict"] == "no zombies"
    assert (report["nspid"][-1], report["init"], report["state"]) == (os.getpid(), None, "R")
    assert whoreaps.describe(report) == "not PID 1 of its PID namespace, not a known init"
