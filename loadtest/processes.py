"""Starting, stopping and reaping the processes the harness owns.

Every process the harness starts runs in a session of its own, so it and
everything it forked can be ended with one killpg and nothing else on the
machine is touched. The harness also makes itself a child subreaper: when a
server dies, its zombies and children come back to the harness (not to PID 1,
seconds later) and are reaped here, the way tini does it.

A process is stopped the same way whoever it is: one signal (SIGTERM) to the process
itself, a grace to exit in, then SIGKILL to its group; what was sent, how long it was
waited for and how it ended come back as :class:`Stopped`, which the scenario records.
Then :func:`end_leftovers` ends whatever of the tree the harness started or adopted is
still running (a daemon the server double-forked, a worker its parent left behind), and
says which. Every signal goes through :func:`send`, so ``harness.log`` has each one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from diagnostics.errors import DiagnosticsError
from diagnostics.proctable import read_stat, task_children
from loadtest import defaults
from loadtest.trace import TRACE

# Runs first in every child: ask the kernel for a death signal if the harness dies (even
# by SIGKILL, which no cleanup code survives), join the pids cgroup if one is given
# (so the command is capped from its first instruction), then become the real
# command. Both survive exec; the PID stays the same, so the sampler's target is it.
_ORPHAN_GUARD = """
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(1, int(sys.argv[2]))  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(1)  # the harness died before the guard was set
if sys.argv[3]:
    try:
        with open(sys.argv[3], "w") as procs:
            procs.write(str(os.getpid()))
    except OSError as error:
        sys.stderr.write(f"cannot join the pids cgroup ({sys.argv[3]}): {error.strerror}\\n")
        os._exit(126)
os.execvp(sys.argv[4], sys.argv[4:])
"""

STOP_GRACE = defaults.STOP_GRACE.default
"""Seconds a process has to exit after SIGTERM before SIGKILL, unless told otherwise (the
server's --stop-grace; the one value is loadtest/defaults.py's)."""
KILL_WAIT = 10.0
"""Seconds a process may take to vanish after SIGKILL (a process in uninterruptible sleep
cannot die before it wakes); past it the harness goes on rather than hang."""


def send(pid: int, signum: int, why: str, *, group: bool = False) -> bool:
    """The harness's one way to signal a process (or, with ``group``, its process group):
    traced; False when nobody was there to receive it."""
    name = signal.Signals(signum).name
    target = f"group {pid}" if group else str(pid)
    try:
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError) as error:
        TRACE(f"signal {name} -> {target} not sent ({why}): {error.strerror}")
        return False
    TRACE(f"signal {name} -> {target} ({why})")
    return True


def exit_text(code: int | None) -> str:
    """A returncode as people say it: "exited 0", "killed by SIGKILL"."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited {code}"


@dataclass(frozen=True, slots=True)
class Stopped:
    """How a process the harness stopped ended: an entry of scenario.json's ``stops``."""

    pid: int
    signals: tuple[str, ...]
    """What the harness sent it to end it, in order; () when it had ended by itself."""
    waited_s: float
    """Seconds it was given to exit after the first signal."""
    killed: bool
    """It had not exited within its grace, and was sent SIGKILL."""
    ended: str
    """How it ended (:func:`exit_text`)."""
    why: str | None = None
    """Why it was killed without waiting out a grace after SIGTERM (a PID 1 that cannot act
    on SIGTERM; the parent killed alone on purpose); None for the usual stop."""

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "signals": list(self.signals), "waited_s": round(self.waited_s, 3)}


class OwnedProcess:
    """A process the harness answers for: it can be polled, signalled and stopped.

    Subclasses say how its exit is collected (:meth:`poll`): from subprocess for one the
    harness started, by waitpid for one it adopted.
    """

    def __init__(self, name: str, pid: int, command: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.pid = pid
        self.command = list(command)
        self.log_path = log_path
        self.stopped: Stopped | None = None
        """How :meth:`stop` ended it; None until then."""

    def poll(self) -> int | None:
        """Its returncode once it has exited (negative: the signal), else None."""
        raise NotImplementedError

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def running(self) -> bool:
        return self.poll() is None

    def wait(self, timeout: float) -> int | None:
        wait_for(lambda: not self.running(), timeout, interval=0.01)
        return self.poll()

    def signal_group(self, signum: int, why: str) -> None:
        """Signal the process and everything in its process group."""
        send(self.pid, signum, f"{self.name}: {why}", group=True)

    def stop(self, grace: float = STOP_GRACE, resume: bool = False) -> Stopped:
        """SIGTERM once, ``grace`` seconds to exit, then SIGKILL: after this the process is
        gone and reaped. ``resume``: SIGCONT to its group with the SIGTERM, for a process
        the harness froze (a stopped process cannot act on SIGTERM). A second call returns
        what the first did."""
        if self.stopped is not None and not self.running():
            return self.stopped
        signals: list[str] = []
        started = time.monotonic()
        killed = False
        if self.running():
            if send(self.pid, signal.SIGTERM, f"{self.name}: stop"):
                signals.append("SIGTERM")
            if resume:
                self.signal_group(signal.SIGCONT, "resume, so that it can act on SIGTERM")
            if self.wait(grace) is None:
                killed = True
                signals.append("SIGKILL")
                self.signal_group(signal.SIGCONT, "resume")
                self.signal_group(signal.SIGKILL, f"still running {grace:g} s after SIGTERM")
                self.wait(KILL_WAIT)
        waited = time.monotonic() - started if signals else 0.0
        self.stopped = Stopped(self.pid, tuple(signals), waited, killed, exit_text(self.poll()))
        TRACE(
            f"process {self.pid} ({self.name}) ended: {self.stopped.ended}"
            + (f" after {waited:.3f} s; sent {', '.join(signals)}" if signals else "")
        )
        self._release()
        return self.stopped

    def kill_alone(self, signum: int, why: str) -> Stopped:
        """``signum`` (SIGKILL) to this process alone, not its group, as a crash or the OOM
        killer would end it: its children go on (the harness adopts them). Recorded like a
        stop, so that a later :meth:`stop` returns it."""
        started = time.monotonic()
        sent = send(self.pid, signum, f"{self.name}: {why}")
        self.wait(KILL_WAIT)
        self.stopped = Stopped(
            self.pid,
            (signal.Signals(signum).name,) if sent else (),
            time.monotonic() - started,
            signum == signal.SIGKILL and sent,
            exit_text(self.poll()),
            why,
        )
        TRACE(f"process {self.pid} ({self.name}) ended: {self.stopped.ended} ({why})")
        self._release()
        return self.stopped

    def _release(self) -> None:
        """What the process held besides itself (its log file)."""


class ManagedProcess(OwnedProcess):
    """A subprocess in its own session whose output goes to a log file.

    With ``cgroup_procs`` (a cgroup's ``cgroup.procs``), it runs in that cgroup from
    before its command's first instruction, or not at all. ``death_signal`` is what
    the kernel sends it if the harness dies: SIGTERM lets a server shut down cleanly;
    a process the harness may have frozen (Locust) needs SIGKILL, the one signal a
    stopped process acts on.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        cwd: Path,
        cgroup_procs: Path | None = None,
        death_signal: int = signal.SIGTERM,
        env: dict[str, str] | None = None,
    ) -> None:
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in _release()
        try:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _ORPHAN_GUARD,
                    str(os.getpid()),
                    str(int(death_signal)),
                    str(cgroup_procs or ""),
                    *command,
                ],  # fmt: skip
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=None if env is None else {**os.environ, **env},
            )
        except OSError:
            self._log.close()
            raise
        super().__init__(name, self.popen.pid, command, log_path)
        TRACE(
            f"process {self.pid} ({name}) started: {' '.join(self.command)}"
            f" [death signal {signal.Signals(death_signal).name}"
            f"{f', cgroup {cgroup_procs.parent}' if cgroup_procs else ''}]"
        )

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _release(self) -> None:
        self._log.close()


class AdoptedProcess(OwnedProcess):
    """A process the harness did not start but adopted as their subreaper: the daemon a
    server's launcher double-forked. Its exit is collected with waitpid; the launcher (which
    exited) is kept for its log and stopped with it."""

    def __init__(self, pid: int, launcher: ManagedProcess) -> None:
        super().__init__(launcher.name, pid, _command(pid), launcher.log_path)
        self.launcher = launcher
        self._code: int | None = None
        TRACE(f"process {pid} ({self.name}) adopted: {' '.join(self.command)}")

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: it is gone, how is unknown
            self._code = -signal.SIGKILL if not Path(f"/proc/{self.pid}").exists() else None
            return self._code
        if pid:
            self._code = os.waitstatus_to_exitcode(status)
        return self._code

    def _release(self) -> None:
        self.launcher.stop(grace=0)


def _command(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return [f"pid {pid}"]
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or [f"pid {pid}"]


def reap_orphans(keep: Sequence[int] = ()) -> int:
    """Reap adopted zombies (not the processes in ``keep``, which Popen still waits for).

    Reaping by PID, never waitpid(-1), so subprocess keeps the exit status of
    the processes it manages.
    """
    how: Counter[str] = Counter()
    for pid in _zombie_children():
        if pid in keep:
            continue
        try:
            _, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        how[exit_text(os.waitstatus_to_exitcode(status))] += 1
    if how:
        TRACE(
            f"reaped {how.total()} orphan(s): "
            + ", ".join(f"{n} {text}" for text, n in how.items())
        )
    return how.total()


def _zombie_children() -> list[int]:
    zombies = []
    for pid in own_children():
        try:
            if read_stat(pid).zombie:
                zombies.append(pid)
        except DiagnosticsError:
            continue
    return zombies


def own_children() -> set[int]:
    """The harness's children: those it started, and the orphans it adopted."""
    try:
        return task_children(os.getpid())
    except DiagnosticsError:
        return set()


@dataclass(frozen=True, slots=True)
class Leftover:
    """A process of the tree the harness started or adopted, still running once the
    processes it started were stopped, which it then ended (SIGKILL)."""

    pid: int
    command: str


def end_leftovers(
    before: Iterable[int], sessions: Iterable[int], timeout: float = KILL_WAIT
) -> list[Leftover]:
    """End every process still running of the tree the harness started or adopted, and
    reap it; return those it had to end.

    The tree is the harness's children that were not there ``before`` the scenario (its
    servers' orphans come to it: it is their subreaper), everything below them, and
    whatever is still in the ``sessions`` of the processes it started (for where it could
    not become a subreaper). Each gets SIGCONT (a stopped process cannot die of anything
    but SIGKILL, and would stay stopped) and SIGKILL.
    """
    existing = set(before)
    ended: dict[int, Leftover] = {}

    def remaining() -> list[int]:
        roots = (own_children() - existing) | _in_sessions(set(sessions))
        return [pid for pid in _with_descendants(roots) if _running(pid)]

    def swept() -> bool:
        left = remaining()
        for pid in left:
            if pid not in ended:
                ended[pid] = Leftover(pid, " ".join(_command(pid)))
            send(pid, signal.SIGCONT, "left running at the end")
            send(pid, signal.SIGKILL, "left running at the end")
        reap_orphans()
        return not left

    wait_for(swept, timeout, interval=0.02)
    return list(ended.values())


def _with_descendants(roots: set[int]) -> list[int]:
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.append(pid)
        try:
            todo.extend(task_children(pid))
        except DiagnosticsError:
            continue
    return found


def _running(pid: int) -> bool:
    try:
        return not read_stat(pid).zombie
    except DiagnosticsError:
        return False


def _in_sessions(sessions: set[int]) -> set[int]:
    """Processes whose session is one of ``sessions`` (field 6 of /proc/PID/stat)."""
    if not sessions:
        return set()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            data = Path(entry.path, "stat").read_bytes()
            session = int(data[data.rindex(b")") + 2 :].split()[3])
        except (OSError, ValueError, IndexError):
            continue
        if session in sessions:
            found.add(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``condition`` until true or ``timeout``; the harness's only way to wait on state."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
