"""Who holds a tree's zombies, and whether it reaped children: on real process trees."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from subprocess import PIPE

from bench.holder import HolderSpec, ZombieHolder
from diagnostics.sockets import is_listening, listening_ports
from diagnostics.tree import is_shell_wrapper, snapshot


def test_holders_are_named_deepest_culprit_included() -> None:
    with ZombieHolder(HolderSpec(exits=[0, 0], alive=1, middles=[3])) as holder:
        tree = snapshot(holder.pid)
    top, second = tree.holders
    assert (top.zombies, top.depth) == (3, 1) and top.pid != holder.pid
    assert (second.pid, second.zombies, second.depth) == (holder.pid, 2, 0)
    assert "bench.holder" in second.cmdline
    assert top.nspid is None and second.nspid is None  # in the namespace of the /proc read


FORK_AND_REAP = """
import os, sys
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print("reaped", flush=True)
sys.stdin.read()
"""


def test_reaped_children_leave_their_faults_with_the_parent() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=PIPE)
    forking = subprocess.Popen([sys.executable, "-c", FORK_AND_REAP], stdin=PIPE, stdout=PIPE)
    try:
        assert forking.stdout is not None and forking.stdout.readline() == b"reaped\n"
        assert snapshot(idle.pid).reaped_faults == 0
        assert (snapshot(forking.pid).reaped_faults or 0) > 0
    finally:
        idle.communicate(b"")
        forking.communicate(b"")


def test_shell_wrappers_are_recognised() -> None:
    assert is_shell_wrapper(["sh", "-c", "python3 server.py 8000; true"])
    assert is_shell_wrapper(["/bin/bash", "-c", "exec gunicorn app:app"])
    assert not is_shell_wrapper(["python3", "-c", "print(1)"])
    assert not is_shell_wrapper(["sh", "server.sh"])


def test_a_listening_socket_is_seen_without_connecting() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert not is_listening(port)  # bound is not listening
        listener.listen()
        assert port in listening_ports()
    with socket.socket(socket.AF_INET6) as listener6:
        listener6.bind(("::1", 0))
        listener6.listen()
        assert is_listening(listener6.getsockname()[1])


def test_unreadable_tables_count_nothing() -> None:
    assert listening_ports(("/nonexistent/tcp",)) == set()
    assert os.path.exists("/proc/net/tcp")


def test_sigchld_dispositions_off_the_default_are_named() -> None:
    with ZombieHolder(HolderSpec(alive=1, sigchld="ignore")) as ignoring:
        handled = snapshot(ignoring.pid).sigchld  # its live child inherits the setting
        assert handled[ignoring.pid] == "ignored" and set(handled.values()) == {"ignored"}
    with ZombieHolder(HolderSpec(alive=1)) as plain:
        assert snapshot(plain.pid).sigchld == {}
