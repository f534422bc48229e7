"""Inherited descriptors on real processes: our server's two faults, prefork pools that
share their listening socket by design, an exec'd child, and what cannot be told."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench import listener_holders
from diagnostics.doctor import examine as doctor
from diagnostics.inherited import (
    FIX_CLIENT,
    FIX_EXEC,
    FIX_LISTENER,
    ListenerHolders,
    Section,
    examine,
    waiting_on,
)
from diagnostics.proctable import task_children
from tests import diag_helpers as h
from tests.server_helpers import ServerProcess

# A parent that listens on 127.0.0.1 and starts two children that inherit the socket.
# argv[1]: what the parent waits in ("accept" on the socket, or "pause"); argv[2]: what
# the children do: wait on the socket ("accept", "poll", "select", "epoll": a prefork
# pool), "pause" (hold it, never accept), or "exec" (run sleep, inheriting it). It
# prints the children's PIDs; stdin EOF ends them all.
FAMILY = r"""
import os, select, signal, socket, subprocess, sys, threading

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()

def wait_in(how):
    if how == "accept":
        listener.accept()
    elif how == "poll":
        waiting = select.poll()
        waiting.register(listener, select.POLLIN)
        waiting.poll()
    elif how == "select":
        select.select([listener], [], [])
    elif how == "epoll":
        waiting = select.epoll()
        waiting.register(listener.fileno(), select.EPOLLIN)
        waiting.poll()
    signal.pause()

children = []
for _ in range(2):
    if sys.argv[2] == "exec":
        listener.set_inheritable(True)
        children.append(subprocess.Popen(["sleep", "600"], close_fds=False).pid)
    elif (pid := os.fork()) == 0:
        wait_in(sys.argv[2])
    else:
        children.append(pid)
print(*children, flush=True)

def end():
    sys.stdin.buffer.read()
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os._exit(0)

threading.Thread(target=end).start()
wait_in(sys.argv[1])
"""


@pytest.fixture
def family(request: pytest.FixtureRequest) -> Iterator[tuple[int, list[int]]]:
    """(parent PID, children PIDs) of FAMILY run with ``request.param`` (parent, children)."""
    parent_waits, children_do = request.param
    proc = h.spawn(FAMILY, parent_waits, children_do)
    assert proc.stdout is not None
    children = [int(pid) for pid in proc.stdout.readline().split()]
    try:
        h.wait_until(lambda: len(task_children(proc.pid)) == 2, what="both children")
        if children_do == "exec":
            h.wait_until(lambda: all(_runs_sleep(pid) for pid in children), what="the execs")
        yield proc.pid, children
    finally:
        h.end_by_stdin(proc, also_kill=children)


def _runs_sleep(pid: int) -> bool:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "sleep"
    except OSError:
        return False


def slow_requests(server: ServerProcess, count: int) -> tuple[list[socket.socket], list[int]]:
    """``count`` requests in flight, each child started after the one before: (the client
    sockets, the children in the order they were forked)."""
    conns: list[socket.socket] = []
    children: list[int] = []
    for _ in range(count):
        conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        conns.append(conn)
        h.wait_until(lambda: len(server.live_children()) == len(conns), what="the next child")
        children += [pid for pid in server.live_children() if pid not in children]
    return conns, children


def examined(server: ServerProcess, count: int) -> tuple[Section, list[int], int]:
    """(the section, the children, how many ListenerHolders counts) with ``count`` slow
    requests in flight."""
    conns, children = slow_requests(server, count)
    try:
        return examine(server.pid), children, ListenerHolders(server.pid).count(children)
    finally:
        for conn in conns:
            conn.close()


def test_children_that_keep_our_listener_are_named_with_the_fix(start_server) -> None:
    server = start_server("--child-keeps-listener", "--work-ms", "60000")
    section, children, holders = examined(server, 3)
    assert holders == 3
    [listener] = section["listeners"]
    assert listener["address"] == f"127.0.0.1:{server.port}"
    assert (listener["holders"], listener["accepting"]) == (sorted(children), [])
    assert listener["parent_waits"] is True  # in poll, on the listener and its wakeup pipe
    [finding] = section["findings"]
    assert finding["kind"] == "listener" and finding["children"] == sorted(children)
    held = f"3 of its 3 children hold its listening socket 127.0.0.1:{server.port} (fd "
    assert finding["problem"].startswith(held)
    assert finding["fix"] == FIX_LISTENER
    assert section["client_sockets"] == {"parent_holds": 0, "children": []}


def test_children_of_a_correct_server_hold_nothing_inherited(start_server) -> None:
    server = start_server("--work-ms", "60000")
    section, _children, holders = examined(server, 3)
    assert holders == 0
    assert section["findings"] == section["notes"] == []
    assert section["listeners"][0]["holders"] == []


def test_children_holding_their_siblings_clients_are_named_with_the_fix(start_server) -> None:
    """--leak-client-fd seen from the children: the n-th child inherits the n-1 client
    sockets the parent kept, on top of its own."""
    server = start_server("--leak-client-fd", "--work-ms", "60000")
    section, children, _holders = examined(server, 3)
    assert section["client_sockets"] == {
        "parent_holds": 3,
        "children": [
            {"pid": children[1], "held": 2, "not_own": 1},
            {"pid": children[2], "held": 3, "not_own": 2},
        ],
    }
    [finding] = section["findings"]
    assert finding["kind"] == "client-sockets"
    assert finding["problem"].startswith(
        "2 of its 3 children hold client sockets of other connections (3 in all, up to 2 in"
        " one): the parent still held them when it forked"
    )
    assert finding["fix"] == FIX_CLIENT


@pytest.mark.parametrize(
    "family",
    [("pause", how) for how in ("accept", "poll", "select", "epoll")],
    indirect=True,
    ids=lambda param: f"workers-{param[1]}",
)
def test_a_prefork_pool_that_accepts_on_the_shared_socket_is_no_finding(family) -> None:
    parent, children = family
    h.wait_until(lambda: all(waiting_on(child) for child in children), what="workers waiting")
    section = examine(parent)
    assert section["findings"] == []
    [listener] = section["listeners"]
    assert listener["holders"] == sorted(children) and listener["accepting"]
    [note] = section["notes"]
    assert note.endswith("workers that accept on a shared socket, by design")


@pytest.mark.parametrize("family", [("accept", "exec")], indirect=True, ids=["exec"])
def test_an_exec_that_inherits_the_listener_is_told_to_use_cloexec(family) -> None:
    parent, children = family
    section = examine(parent)
    [finding] = section["findings"]
    assert (finding["kind"], finding["children"]) == ("listener", sorted(children))
    assert finding["fix"] == FIX_EXEC


@pytest.mark.parametrize("family", [("pause", "pause")], indirect=True, ids=["nobody-accepts"])
def test_when_nobody_is_seen_accepting_the_finding_says_it_cannot_tell(family) -> None:
    parent, children = family
    [finding] = examine(parent)["findings"]
    assert finding["kind"] == "listener-unclear"
    assert "who accepts is not known" in finding["problem"]
    assert finding["fix"].startswith(f"if each child serves one connection, {FIX_LISTENER}")


def test_doctor_reports_the_section_in_text_json_and_all(start_server) -> None:
    """Under ``none`` too, so that ``--all`` (parents with zombies) lists it."""
    server = start_server("--reaper", "none", "--child-keeps-listener", "--work-ms", "60000")
    assert server.request(b"GET /\r\n").startswith(b"HTTP/1.1 400 ")  # HTTP/0.9: refused at once
    h.wait_until(lambda: len(server.zombie_pids()) == 1, what="its child to be a zombie")
    conns, _children = slow_requests(server, 2)
    try:
        text = h.run_cli("doctor", str(server.pid), "--watch", "0")
        as_json = h.run_cli("doctor", str(server.pid), "--watch", "0", "--json")
        every = h.run_cli("doctor", "--all", "--watch", "0", "--json")
        report = doctor(server.pid, 0)
    finally:
        for conn in conns:
            conn.close()
    assert text.returncode == as_json.returncode == every.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[-1].startswith("  verdict: ")
    assert "  inherited: 2 of its 3 children hold its listening socket 127.0.0.1:" in text.stdout
    assert f"    fix: {FIX_LISTENER}" in lines
    assert json.loads(as_json.stdout)["inherited"]["findings"][0]["fix"] == FIX_LISTENER
    [ours] = [p for p in json.loads(every.stdout)["parents"] if p["pid"] == server.pid]
    assert (
        ours["inherited"]["findings"][0]["children"]
        == report["inherited"]["findings"][0]["children"]
    )
    assert report["inherited"]["findings"][0]["kind"] == "listener"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to look at a process as another user")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_a_parent_not_ours_to_read_is_said_so(start_server) -> None:
    if not h.others_can_read(h.REPO):
        pytest.skip(h.NOBODY_CANNOT_READ)
    server = start_server("--child-keeps-listener")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    result = subprocess.run(
        [*nobody, sys.executable, "-m", "diagnostics", "doctor", str(server.pid), "--watch", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=h.REPO,
        env={**os.environ, "PYTHONPATH": str(h.REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert "  inherited: the parent's descriptors could not be read (permission)" in result.stdout


def test_the_cost_bench_counts_every_holder_and_no_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """bench.listener_holders checks each count it times (all hold, none hold)."""
    assert listener_holders.main(["--children", "3", "--rounds", "2", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["children"] == 3 and row["holding_ms"] > 0 and row["closed_ms"] > 0
    assert row["sample_ms"] > 0 and row["sample_without_ms"] > 0
