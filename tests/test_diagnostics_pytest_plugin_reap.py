"""``pytest --child-leaks``: a leaked zombie is reported with the exit status ``waitid``
reads without reaping it, and never reaped behind the back of the object that owns it.

An unjoined multiprocessing Pool is the case that matters: had the check reaped its
dead workers, the pool would still believe them alive and, at its end, SIGTERM their
PIDs (which by then may name other processes). Here the throwaway suite's last test
looks at the pool's own state after the check: the workers still zombies, the pool
reaping them itself (it reads their real exit status, 0) and signalling nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.plugin_runs import NOTE, line_of, run_suite, teardown_errors

pytest_plugins = ("pytester",)

pytestmark = pytest.mark.slow  # a whole inner pytest each

OWNED = (
    NOTE
    + r"""
import json, multiprocessing, subprocess, sys, time

HELD = {}


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def wait_for_zombies(pids):
    deadline = time.monotonic() + 30
    while any(state(pid) != "Z" for pid in pids):
        assert time.monotonic() < deadline, [state(pid) for pid in pids]
        time.sleep(0.005)


def test_pool_closed_not_joined():
    pool = multiprocessing.get_context("fork").Pool(2)  # site: pool
    assert pool.map(abs, [-1, -2, -3, -4]) == [1, 2, 3, 4]
    pool.close()  # the workers exit; nobody joins them: zombies the pool owns
    HELD["pool"] = pool
    wait_for_zombies([worker.pid for worker in pool._pool])


def test_popen_zombie():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])  # site: popen
    HELD["popen"] = proc
    note("popen", proc.pid)
    wait_for_zombies([proc.pid])


def test_fork_zombie():
    pid = os.fork()  # site: fork
    if pid == 0:
        os._exit(5)
    HELD["fork"] = pid
    note("fork", pid)
    wait_for_zombies([pid])


def test_afterwards(monkeypatch):
    pool, popen, fork = HELD["pool"], HELD["popen"], HELD["fork"]
    after = {
        "workers": [state(worker.pid) for worker in pool._pool],
        "popen_returncode": popen.returncode,
        "fork": state(fork),
    }
    signals = []
    kill = os.kill
    monkeypatch.setattr(os, "kill", lambda pid, sig: (signals.append([pid, sig]), kill(pid, sig)))
    pool.terminate()  # what the pool's finalizer does at exit: SIGTERM each worker alive
    pool.join()
    after["worker_exitcodes"] = [worker.exitcode for worker in pool._pool]
    after["signals"] = signals
    after["popen_wait"] = popen.wait()
    try:
        after["fork_wait"] = os.waitstatus_to_exitcode(os.waitpid(fork, 0)[1])
    except ChildProcessError:
        after["fork_wait"] = "ECHILD"
    Path(os.environ["PID_DIR"], "after.json").write_text(json.dumps(after))
"""
)

LEAKY = {"test_pool_closed_not_joined", "test_popen_zombie", "test_fork_zombie"}


def after(run: Any) -> dict[str, Any]:
    return json.loads((run.pid_dir / "after.json").read_text())


def check_pool_report(run: Any) -> None:
    site = f"test_owned.py:{line_of(OWNED, 'site: pool')} in test_pool_closed_not_joined"
    run.result.stdout.fnmatch_lines(
        ["test_owned.py::test_pool_closed_not_joined left 2 child process(es) behind:"]
        + [
            "  PID * zombie, exit status 0: [[]*[]]",
            "    left for its owner to reap: multiprocessing's ForkProcess 'ForkPoolWorker-*'",
            f"    started by os.fork via multiprocessing.BaseContext.Pool at {site}",
            "        pool = multiprocessing.get_context(*).Pool(2)  # site: pool",
        ]
        * 2
    )


def test_zombies_are_left_to_their_owners(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_owned=OWNED)
    run = run_suite(pytester, "--child-leaks=fail")
    run.result.assert_outcomes(passed=4, errors=3)
    assert teardown_errors(run.output) == LEAKY
    check_pool_report(run)
    run.result.stdout.fnmatch_lines(
        [
            f"  PID {run.pid('popen')} zombie, exit status 3: [[]*[]]",
            "    left for its owner to reap: its subprocess.Popen",
            f"    started by subprocess.Popen at test_owned.py:{line_of(OWNED, 'site: popen')}*",
        ]
    )
    # A zombie nothing owns is reaped (nothing else would), after its status is read.
    run.result.stdout.fnmatch_lines(
        [
            f"  PID {run.pid('fork')} zombie, exit status 5: [[]*[]]",
            "    reaped now: nothing else in the process owned it",
            f"    started by os.fork at test_owned.py:{line_of(OWNED, 'site: fork')}*",
        ]
    )
    assert after(run) == {
        "workers": ["Z", "Z"],  # left in place by the check
        "worker_exitcodes": [0, 0],  # the pool reaped its own workers, reading their status
        "signals": [],  # and sent no SIGTERM to a dead PID
        "popen_returncode": None,
        "popen_wait": 3,  # the Popen gets the real status (ECHILD would have made it 0)
        "fork": "gone",
        "fork_wait": "ECHILD",
    }


def test_reap_all_reaps_through_the_owner(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_owned=OWNED)
    run = run_suite(pytester, "--child-leaks=fail", "--child-leaks-reap=all")
    run.result.assert_outcomes(passed=4, errors=3)
    run.result.stdout.fnmatch_lines(
        [
            f"  PID {run.pid('popen')} zombie, exit status 3: [[]*[]]",
            "    reaped now through its owner, its subprocess.Popen",
        ]
    )
    run.result.stdout.fnmatch_lines(
        ["    reaped now through its owner, multiprocessing's ForkProcess 'ForkPoolWorker-*'"]
    )
    assert after(run) == {
        "workers": ["gone", "gone"],  # the table is clean...
        "worker_exitcodes": [0, 0],  # ...and each owner recorded the exit
        "signals": [],
        "popen_returncode": 3,
        "popen_wait": 3,
        "fork": "gone",
        "fork_wait": "ECHILD",
    }


def test_reap_none_leaves_the_evidence(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_owned=OWNED)
    run = run_suite(pytester, "--child-leaks=fail", "--child-leaks-reap=none")
    run.result.assert_outcomes(passed=4, errors=3)
    run.result.stdout.fnmatch_lines(
        [f"  PID {run.pid('fork')} zombie, exit status 5: [[]*[]]", "    left unreaped, as asked"]
    )
    found = after(run)
    assert found["fork"] == "Z" and found["fork_wait"] == 5  # the user's own wait still works
    assert found["workers"] == ["Z", "Z"] and found["signals"] == []


FDS = (
    NOTE
    + r"""
import socket, subprocess, sys, time

HELD = []
HOLD = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_forked_child_keeps_the_listener():
    listener = socket.create_server(("127.0.0.1", 0))
    note("port", listener.getsockname()[1])
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(ready_w, b"x")
        time.sleep(120)
        os._exit(0)
    os.read(ready_r, 1)
    listener.close()  # pytest let go of the port; its child did not
    os.close(ready_r)
    os.close(ready_w)


def test_popen_given_a_pipe():
    read_end, write_end = os.pipe()
    HELD.append(subprocess.Popen(HOLD, pass_fds=[write_end]))
    os.close(write_end)
    HELD.append(read_end)
    note("write_end", write_end)


def test_popen_given_nothing():
    HELD.append(subprocess.Popen(HOLD))
"""
)


def test_fds_names_the_sockets_and_pipes_a_child_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fds=FDS)
    run = run_suite(pytester, "--child-leaks=fail", "--child-leaks-fds")
    run.result.assert_outcomes(passed=3, errors=3)
    run.result.stdout.fnmatch_lines(
        [
            "test_fds.py::test_forked_child_keeps_the_listener left 1 child process(es) behind:",
            "*",
            "*",
            "*",
            "    holds * socket(s)/pipe(s) of the pytest process (beyond fd 0-2): *"
            f"TCP 127.0.0.1:{run.pid('port')} listening (socket:[[]*[]]) (fd *",
        ]
    )
    run.result.stdout.fnmatch_lines(
        [
            "test_fds.py::test_popen_given_a_pipe left 1 child process(es) behind:",
            "*",
            "*",
            "*",
            "*",
            "    holds 1 socket(s)/pipe(s) of the pytest process (beyond fd 0-2): "
            f"pipe:[[]*[]] write end (fd {run.pid('write_end')})",
        ]
    )
    tail = run.output[run.output.index("test_popen_given_nothing left") :]
    assert "holds" not in tail.split("short test summary")[0]
