"""Each reaping strategy on a real server, and signal coalescing made deterministic."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from diagnostics.sampler import Sampler
from reports.checks import Counts, zombies_match_counters
from tests.server_helpers import (
    ROOT,
    concurrent_requests,
    read_to_eof,
    reap_adopted,
    wait_until,
    zombie_children_of_self,
)

REQUESTS = 25


def _quiescent(pid: int) -> bool:
    """Asleep in poll with no SIGCHLD pending: every exit so far has been handled.

    A signal handler runs in the parent itself, which then polls again; and a
    wakeup byte in the pipe keeps poll from sleeping. So a parent seen asleep
    with nothing pending has reaped all it is going to.
    """
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    pending = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
    return fields["State"].split()[0] == "S" and not pending & (1 << (signal.SIGCHLD - 1))


def test_no_reaper_leaves_exactly_one_zombie_per_request(start_server) -> None:
    server = start_server("--no-reaper")
    answers = concurrent_requests(server.port, REQUESTS)
    assert all(answer.endswith(b"Hello, World!\n") for answer in answers)
    wait_until(lambda: len(server.zombie_pids()) == REQUESTS, what=f"{REQUESTS} zombies")
    zombies = server.zombie_pids()
    assert server.live_children() == []
    counters = server.stop()
    assert counters["forked"] - counters["reaped"] == len(zombies) == REQUESTS
    assert counters["accepted"] == REQUESTS
    reap_adopted(zombies)  # they came to pytest, the subreaper (see conftest)


@pytest.mark.parametrize("strategy", ["loop", "ignore", "wakeup", "own"])
def test_reaping_strategies_hold_no_zombie_once_idle(start_server, strategy: str) -> None:
    server = start_server("--reaper", strategy)
    answers = concurrent_requests(server.port, REQUESTS)
    assert all(answer.endswith(b"Hello, World!\n") for answer in answers)
    wait_until(lambda: not server.children(), what="every child reaped")
    counters = server.stop()
    assert counters["accepted"] == counters["forked"] == REQUESTS
    if strategy == "ignore":  # the kernel reaped: the server does not pretend to know
        assert counters["reaped"] is None
    else:
        assert counters["forked"] - counters["reaped"] == 0
    assert counters["reaped_at_shutdown"] == 0


def test_single_reaper_settles_its_debt_at_shutdown(start_server) -> None:
    server = start_server("--reaper", "single")
    concurrent_requests(server.port, REQUESTS)
    wait_until(lambda: not server.live_children(), what="every request answered")
    wait_until(lambda: _quiescent(server.pid), what="the server to settle")
    zombies = server.zombie_pids()
    counters = server.stop()
    assert counters["forked"] == REQUESTS
    assert counters["reaped_at_shutdown"] == len(zombies)
    assert counters["reaped"] + counters["reaped_at_shutdown"] == REQUESTS


# -- coalescing: SIGCHLD blocked while N children die, then one signal for all of them ---------

COALESCE = """
import json, os, signal, sys, time
from server.reapers import STRATEGIES, Counters

strategy, n = STRATEGIES[sys.argv[1]](), int(sys.argv[2])
counters = Counters()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
strategy.install(counters)
pids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    pids.append(pid)

def state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]

deadline = time.monotonic() + 20
while any(state(pid) != "Z" for pid in pids):
    assert time.monotonic() < deadline, "children did not all exit"
    time.sleep(0.005)
pending = signal.SIGCHLD in signal.sigpending()
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})  # the handler runs here, once
zombies = sum(state(pid) == "Z" for pid in pids if os.path.exists(f"/proc/{pid}"))
print(json.dumps({"pending": pending, "handled": counters.sigchld_handled,
                  "reaped": counters.reaped, "zombies": zombies}))
for pid in pids:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
"""


def coalesce(strategy: str, children: int) -> dict[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", COALESCE, strategy, str(children)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize("children", [2, 10, 50])
def test_n_exits_while_blocked_deliver_one_sigchld(children: int) -> None:
    single = coalesce("single", children)
    assert single == {"pending": True, "handled": 1, "reaped": 1, "zombies": children - 1}
    loop = coalesce("loop", children)
    assert loop == {"pending": True, "handled": 1, "reaped": children, "zombies": 0}


@pytest.mark.slow  # 600 children forked and reaped: about half a second each
@pytest.mark.parametrize("strategy", ["wakeup", "loop"])
def test_a_full_backlog_does_not_starve_the_reaper(start_server, strategy: str) -> None:
    """600 connections queued while the server is stopped, then let go at once.

    An accept loop that drains the whole backlog before looking at its wakeup
    pipe held all 600 children as zombies until the backlog was empty; the
    server accepts at most ACCEPT_BATCH (32) between two reaps.
    """
    server = start_server("--reaper", strategy)
    sampler = Sampler(server.pid)
    os.kill(server.pid, signal.SIGSTOP)
    conns = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(600)]
    answers: list[bytes] = []
    reader = threading.Thread(target=lambda: answers.extend(read_to_eof(c) for c in conns))
    try:
        for conn in conns:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        os.kill(server.pid, signal.SIGCONT)
        reader.start()
        peak = 0

        def settled() -> bool:
            nonlocal peak
            sample = sampler.sample()
            peak = max(peak, sample.zombies)
            return not reader.is_alive() and sample.children == 0

        wait_until(settled, timeout=60, what="every queued request to be served and reaped")
    finally:
        for conn in conns:
            conn.close()
    assert len(answers) == 600 and all(a.endswith(b"Hello, World!\n") for a in answers)
    assert server.stop()["forked"] == 600
    assert peak <= 200


# -- exact counters: the final-sample identity of reports.checks, on real processes -----------

HELD = 3
"""Connections that send nothing, so their children are still running at the sample."""


@pytest.mark.parametrize("strategy", ["loop", "none", "single", "wakeup", "ignore"])
# Every strategy at the small load stays in test-fast; the larger one is for `make test`.
@pytest.mark.parametrize("load", [10, pytest.param(60, marks=pytest.mark.slow)])
def test_final_zombies_are_forked_minus_reaped_minus_running(
    start_server, strategy: str, load: int
) -> None:
    # --grace is only waited out (the held children never finish): short, so the test is.
    server = start_server("--reaper", strategy, "--timeout", "60", "--grace", "0.05")
    answers = concurrent_requests(server.port, load)
    assert all(answer.endswith(b"Hello, World!\n") for answer in answers)
    wait_until(lambda: not server.live_children(), what="every request answered")
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(HELD)]
    try:
        wait_until(lambda: len(server.live_children()) == HELD, what="the held children")
        wait_until(lambda: _quiescent(server.pid), what="the server to settle")
        sample = Sampler(server.pid).sample()
        zombies = server.zombie_pids()
        if strategy == "none":  # nothing ends them at shutdown, and they hold its stdout
            for conn in held:
                conn.close()
        # Otherwise stopped with the held children alive: --grace ends them in the sweep.
        counters = server.stop()
    finally:
        for conn in held:
            conn.close()
    assert counters["forked"] == counters["accepted"] == load + HELD
    check = zombies_match_counters(
        Counts(
            strategy=strategy,
            final_zombies=sample.zombies,
            final_alive=sample.alive,
            forked=counters["forked"],
            reaped=counters["reaped"],
        )
    )
    if strategy == "ignore":
        assert check is None
        assert counters["reaped"] is None and counters["peak_unreaped"] is None
        assert counters["reaped_at_shutdown"] == HELD  # SIGCHLD is back at default then
        return
    assert check is not None
    assert check.ok, check.text
    assert sample.alive == HELD
    assert counters["forked"] - counters["reaped"] <= counters["peak_unreaped"]
    assert counters["peak_unreaped"] <= counters["forked"]
    if strategy == "none":
        assert counters["peak_unreaped"] == counters["forked"]
        assert counters["reaped"] == counters["reaped_at_shutdown"] == 0
        wait_until(lambda: len(zombie_children_of_self()) >= len(zombies) + HELD, what="orphans")
        reap_adopted(zombie_children_of_self())
    else:
        assert counters["reaped"] + counters["reaped_at_shutdown"] == counters["forked"]
        assert counters["reaped_at_shutdown"] == sample.zombies + HELD
