"""loadtest.pidns: a command as PID 1 of a new PID namespace, alone or behind an init,
on the real kernel (skipped, with its reason, where no namespace can be made)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from diagnostics.procstatus import cmdline, namespace_pid
from diagnostics.proctable import read_stat, task_children
from loadtest import cgroup, pidns
from loadtest.processes import reap_orphans
from tests import pidns_helpers as ns
from tests.server_helpers import read_to_eof
from tests.waiting import wait_until

# Stops on SIGTERM (a PID 1 without a handler ignores it), after printing its PID in
# the namespace and the program that the namespace's /proc says is PID 1.
SHOW = """
import os, signal
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
pid1 = open("/proc/1/cmdline").read().split("\\0")[0]
print(os.getpid(), os.path.basename(pid1), flush=True)
while True:
    signal.pause()
"""


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("init", pidns.INITS)
def test_the_command_runs_as_pid1_or_under_the_init_with_its_own_proc(
    init: pidns.Init, tmp_path: Path
) -> None:
    with ns.running(SHOW, init=init, log=tmp_path / "log") as namespace:
        (line,) = ns.said(tmp_path / "log", 1)
        inside, pid1_program = line.split()
        assert namespace_pid(namespace.pid1) == 1
        assert read_stat(namespace.pid1).ppid == namespace.process.pid
        if init == "none":
            assert namespace.command == namespace.pid1
            assert (inside, pid1_program) == ("1", Path(sys.executable).name)
        else:
            assert read_stat(namespace.command).ppid == namespace.pid1
            assert int(inside) == namespace_pid(namespace.command) == 2
            assert pid1_program == init
            assert cmdline(namespace.pid1).startswith(str(pidns.init_path(init)))
        stopped = namespace.stop()
    assert namespace.exit_code == 0  # SIGTERM reached the command, through the init if any
    assert (stopped.signals, stopped.killed, stopped.ended) == (("SIGTERM",), False, "exited 0")
    assert gone(namespace.pid1) and gone(namespace.command)


def test_pid1_killed_from_outside_is_reported_as_sigkill(tmp_path: Path) -> None:
    with ns.running(SHOW, log=tmp_path / "log") as namespace:
        ns.said(tmp_path / "log", 1)
        os.kill(namespace.pid1, signal.SIGKILL)
        assert namespace.process.wait(30) == 128 + signal.SIGKILL


# PID 1 without a SIGTERM handler, with a child of its own: SIGTERM does nothing to it.
DEAF = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def test_a_pid1_deaf_to_sigterm_is_killed_with_everything_in_its_namespace(
    tmp_path: Path,
) -> None:
    with ns.running(DEAF, log=tmp_path / "log") as namespace:
        ns.said(tmp_path / "log", 1)
        (child,) = task_children(namespace.pid1)
        stopped = namespace.stop(timeout=0.5)
        assert namespace.exit_code == 128 + signal.SIGKILL
        assert (stopped.pid, stopped.signals) == (namespace.pid1, ("SIGTERM", "SIGKILL"))
        assert (stopped.killed, stopped.ended) == (True, "killed by SIGKILL")
    wait_until(lambda: gone(child), what="the kernel to end the namespace's last process")


def test_a_command_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    ns.need()
    with pytest.raises(pidns.Pid1Unavailable) as raised:
        pidns.start_pid1("pid1", ["/nonexistent/server"], tmp_path / "log", tmp_path)
    assert str(raised.value) == (
        "PID 1 exited with code 127 before it started:"
        " cannot run /nonexistent/server: No such file or directory"
    )


def test_without_cap_sys_admin_the_reason_is_one_line() -> None:
    """Root without its capabilities, as in an unprivileged container."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    program = "from loadtest.pidns import unavailable; print(unavailable())"
    result = subprocess.run(
        ["setpriv", "--bounding-set", "-all", "--inh-caps", "-all", sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ns.ROOT,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot drop capabilities here: {result.stderr.strip()}")
    assert result.stdout.strip() == (
        "cannot make a new PID namespace (it needs root: CAP_SYS_ADMIN): Operation not permitted"
    )


@pytest.mark.parametrize("init", ["dumb-init", "tini"])
def test_a_missing_init_is_named(
    init: pidns.Init, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    reason = pidns.unavailable(init)
    assert reason is not None and reason.startswith(f"{init} is not ")
    with pytest.raises(pidns.Pid1Unavailable) as raised:
        pidns.pid1_command(["true"], init)
    assert str(raised.value) == reason


# Tries to fork once and says whether the kernel let it.
FORK_ONCE = """
import os, signal
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
try:
    pid = os.fork()
except BlockingIOError:
    print("refused", flush=True)
else:
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    print("forked", flush=True)
while True:
    signal.pause()
"""


def test_the_whole_namespace_is_in_the_pids_cgroup_and_its_limit_holds(tmp_path: Path) -> None:
    ns.need()
    try:
        group = cgroup.create("pidns-test", 2)  # the holder and PID 1: no room for a third
    except cgroup.CgroupUnavailable as error:
        pytest.skip(str(error))
    try:
        command = [sys.executable, "-c", FORK_ONCE]
        with pidns.start_pid1(
            "pid1", command, tmp_path / "log", ns.ROOT, cgroup_procs=group.procs_file
        ) as namespace:
            assert ns.said(tmp_path / "log", 1) == ["refused"]
            assert sorted(group.members()) == sorted([namespace.process.pid, namespace.pid1])
    finally:
        assert group.remove(reap=reap_orphans) == (set(), None)


@pytest.mark.parametrize(
    ("reaper", "reaped", "zombies"), [("loop", 6, 0), ("none", 0, 6), ("own", 3, 3)]
)
def test_our_server_as_pid1_adopts_its_own_orphans(
    tmp_path: Path, reaper: str, reaped: int, zombies: int
) -> None:
    """PID 1 gets every orphan of its namespace: a server that reaps with waitpid(-1) reaps
    its orphans as well as its children (so its ``reaped`` passes its ``forked``), one that
    never waits holds both as zombies, and one that waits for its own children by PID, as
    applications do, reaps those and holds the orphans."""
    ns.need()
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "server", "--port", "0", "--orphans", "--reaper", reaper]
    with pidns.start_pid1("server", command, log, ns.ROOT) as namespace:
        (banner,) = ns.said(log, 1)
        port = int(banner.split(":")[2].split("/")[0])
        for _ in range(3):
            assert _get(port).endswith(b"Hello, World!\n")
        wait_until(
            lambda: _zombies(namespace.pid1) == zombies and not _alive(namespace.pid1),
            what=f"{zombies} zombies and no child running",
        )
        namespace.stop()
        assert namespace.exit_code == 0
    counters = json.loads(log.read_text().splitlines()[-1])
    assert counters["forked"] == 3
    assert counters["reaped"] + counters["reaped_at_shutdown"] == reaped


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return read_to_eof(conn)


def _zombies(pid: int) -> int:
    return len(ns.zombie_children(pid))


def _alive(pid: int) -> int:
    return len(task_children(pid)) - _zombies(pid)


# Starts DEAF as PID 1, says the holder's and PID 1's PIDs, and waits to be killed.
CALLER = """
import sys, time
from pathlib import Path
from loadtest import pidns
log, program = Path(sys.argv[1]), sys.argv[2]
namespace = pidns.start_pid1("pid1", [sys.executable, "-c", program], log, Path.cwd())
print(namespace.process.pid, namespace.pid1, flush=True)
time.sleep(300)
"""


@pytest.mark.slow
def test_a_pid1_deaf_to_sigterm_is_killed_after_a_grace_when_its_caller_is_killed(
    tmp_path: Path,
) -> None:
    """The harness killed outright (SIGKILL) cleans up nothing: its holder gets SIGTERM
    (PR_SET_PDEATHSIG), which PID 1 ignores; the holder kills it after its grace."""
    ns.need()
    log = tmp_path / "log"
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, str(log), DEAF],
        cwd=ns.ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert caller.stdout is not None
    holder, pid1 = map(int, caller.stdout.readline().split())
    ns.said(log, 1)
    (child,) = task_children(pid1)
    caller.kill()
    caller.wait()
    # The holder comes to pytest, a child subreaper (the plugin of --child-leaks), to reap.
    _pid, status = os.waitpid(holder, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGKILL  # PID 1 was killed
    assert gone(pid1) and gone(child)
