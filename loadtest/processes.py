"""Starting, stopping and reaping the processes the harness owns.

Every process the harness starts runs in a session of its own, so it and
everything it forked can be ended with one killpg and nothing else on the
machine is touched. The harness also makes itself a child subreaper: when a
server dies, its zombies and children come back to the harness (not to PID 1,
seconds later) and are reaped here, the way tini does it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from diagnostics.errors import DiagnosticsError
from diagnostics.proctable import read_stat, task_children

# Runs first in every child: ask the kernel for SIGTERM if the harness dies (even
# by SIGKILL, which no cleanup code survives), join the pids cgroup if one is given
# (so the command is capped from its first instruction), then become the real
# command. Both survive exec; the PID stays the same, so the sampler's target is it.
_ORPHAN_GUARD = """
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(1)  # the harness died before the guard was set
if sys.argv[2]:
    try:
        with open(sys.argv[2], "w") as procs:
            procs.write(str(os.getpid()))
    except OSError as error:
        sys.stderr.write(f"cannot join the pids cgroup ({sys.argv[2]}): {error.strerror}\\n")
        os._exit(126)
os.execvp(sys.argv[3], sys.argv[3:])
"""


class ManagedProcess:
    """A subprocess in its own session whose output goes to a log file.

    With ``cgroup_procs`` (a cgroup's ``cgroup.procs``), it runs in that cgroup from
    before its command's first instruction, or not at all.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        cwd: Path,
        cgroup_procs: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        try:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _ORPHAN_GUARD,
                    str(os.getpid()),
                    str(cgroup_procs or ""),
                    *self.command,
                ],  # fmt: skip
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        """Signal the process and everything in its session."""
        try:
            os.killpg(self.popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Ask politely, then insist: after this the process is gone and reaped.

        Only the leader is asked first, so a server can shut down its own
        children gracefully; whatever is left in the group is then killed.
        """
        if self.running():
            try:
                self.popen.send_signal(signum)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait()
        self.signal_group(signal.SIGKILL)  # stragglers the leader left behind
        self._log.close()
        return self.popen.returncode

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def reap_orphans(keep: Sequence[int] = ()) -> int:
    """Reap adopted zombies (not the processes in ``keep``, which Popen still waits for).

    Reaping by PID, never waitpid(-1), so subprocess keeps the exit status of
    the processes it manages.
    """
    reaped = 0
    for pid in _zombie_children():
        if pid in keep:
            continue
        try:
            os.waitpid(pid, os.WNOHANG)
            reaped += 1
        except ChildProcessError:
            pass
    return reaped


def _zombie_children() -> list[int]:
    zombies = []
    for pid in task_children(os.getpid()):
        try:
            if read_stat(pid).zombie:
                zombies.append(pid)
        except DiagnosticsError:
            continue
    return zombies


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``condition`` until true or ``timeout``; the harness's only way to wait on state."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
