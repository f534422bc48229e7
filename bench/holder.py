"""A process that holds zombie children on purpose, for the benchmark and the tests.

The holder forks children that exit at once and are never reaped, optionally live
children (and live children holding zombies of their own), with SIGCHLD set to a
chosen disposition. It reports ready only when every child that should be a zombie
is one: ``waitid(..., WNOWAIT)`` waits for the exit without reaping, so nobody has
to poll and hope. Its lifetime is tied to its stdin: closing the pipe makes every
process of the tree reap its own children and exit, so nothing is left behind.

Run as ``python -m bench.holder`` with the spec as JSON in the environment
variable ``DIAGNOSTICS_HOLDER_SPEC`` (kept off the command line, which would be
thousands of characters long); use :class:`ZombieHolder` to drive it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, NoReturn

Disposition = Literal["default", "ignore", "handler", "block"]
SPEC_ENV = "DIAGNOSTICS_HOLDER_SPEC"


@dataclass(frozen=True, slots=True)
class HolderSpec:
    """What the holder makes.

    ``exits``: one zombie child per entry; a number >= 0 is its exit code, a
    negative number -N means it kills itself with signal N. ``alive``: children
    that stay alive. ``middles``: one live child per entry, holding that many
    zombie children of its own (the target's descendant zombies). ``threads``:
    extra idle threads started BEFORE the SIGCHLD disposition is applied, so with
    "block" only the main thread blocks SIGCHLD. ``alive_program``: a program the live
    children exec instead of staying Python (stdin kept, stdout to /dev/null); it must
    end at stdin's end, as ``/bin/cat`` does. A forked Python child costs about 0.7 MB
    of its own (the pages its refcounts touch), cat about 0.14 MB: thousands of live
    children need the small one.
    """

    exits: Sequence[int] = ()
    alive: int = 0
    middles: Sequence[int] = ()
    sigchld: Disposition = "default"
    threads: int = 0
    alive_program: str | None = None

    @classmethod
    def zombies(cls, count: int, sigchld: Disposition = "default") -> HolderSpec:
        """A spec for ``count`` zombies that exited with code 0."""
        return cls(exits=[0] * count, sigchld=sigchld)


@dataclass(slots=True)
class Children:
    """PIDs the holder forked, as it reported them."""

    zombies: list[int] = field(default_factory=list)
    alive: list[int] = field(default_factory=list)


class ZombieHolder:
    """Starts, and on exit releases, a holder process; a context manager.

    ``release()`` closes the holder's stdin and waits for it; if it does not end
    in time, it and its children are killed by PID (their zombies then go to the
    nearest subreaper or init).
    """

    def __init__(self, spec: HolderSpec, ready_timeout: float = 60.0) -> None:
        self.spec = spec
        self.ready_timeout = ready_timeout
        self.children = Children()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """PID of the holder process."""
        assert self._proc is not None, "holder not started"
        return self._proc.pid

    def start(self) -> ZombieHolder:
        """Start the holder and wait (bounded) until it reports all children in place."""
        repo_root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": repo_root, SPEC_ENV: json.dumps(asdict(self.spec))}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.holder"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            line = _readline(self._proc, self.ready_timeout)
            self.children = Children(**json.loads(line))
        except BaseException:
            self.release()
            raise
        return self

    def release(self, timeout: float = 30.0) -> None:
        """End the holder tree: close stdin so everything reaps and exits; kill if stuck."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        end_by_stdin(proc, timeout, also_kill=self.children.alive)

    def __enter__(self) -> ZombieHolder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def end_by_stdin(
    proc: subprocess.Popen[bytes], timeout: float = 30.0, also_kill: Sequence[int] = ()
) -> None:
    """End a helper process whose lifetime is its stdin, and reap it.

    Closing its pipes is the release: it reaps its own children and exits. One
    that does not within ``timeout`` is killed by PID, with ``also_kill`` (its live
    children, whose zombies then go to the nearest subreaper or init).
    The holder's release and the tests' own helper programs end this one way.
    """
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        for pid in (*also_kill, proc.pid):
            _kill(pid)
        proc.wait()


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The holder's ready line, or an error if it dies or takes longer than ``timeout``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"holder {proc.pid} not ready after {timeout:g} s")
        readable, _, _ = select.select([proc.stdout], [], [], remaining)
        if readable:
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk:
                raise RuntimeError(f"holder {proc.pid} exited before it was ready")
            buf += chunk
    return buf


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- holder side


def _fork(body_exit_code: int | None, program: str | None = None) -> int:
    """Fork a child that exits with the code (or kills itself) at once; the parent
    gets its PID. ``None`` makes a child that runs :func:`_wait_release` instead, or
    execs ``program`` when given.
    """
    pid = os.fork()
    if pid:
        return pid
    if body_exit_code is None:
        if program is not None:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            try:
                os.execv(program, [program])
            except OSError:
                pass  # no such program: stay Python
        _wait_release()
    if body_exit_code < 0:
        os.kill(os.getpid(), -body_exit_code)
    os._exit(body_exit_code)


def _wait_exited(pids: Sequence[int]) -> None:
    """Block until each child has exited, leaving it a zombie (WNOWAIT).
    With SIGCHLD ignored the kernel reaps them, and waitid says there is no child.
    """
    for pid in pids:
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            continue


def _wait_release() -> NoReturn:
    """Block until stdin reaches EOF, reap every child, exit: the release path."""
    sys.stdin.buffer.read()
    while True:
        try:
            os.wait()
        except ChildProcessError:
            os._exit(0)


def _set_disposition(sigchld: str) -> None:
    if sigchld == "ignore":
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    elif sigchld == "handler":
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # catches, never reaps
    elif sigchld == "block":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})


def _hold(spec: HolderSpec) -> None:
    """The holder process: make the children, say ready, wait for release."""
    for _ in range(spec.threads):
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    _set_disposition(spec.sigchld)
    zombies = [_fork(code) for code in spec.exits]
    alive = [_fork(None, spec.alive_program) for _ in range(spec.alive)]
    ready_r, ready_w = os.pipe()
    for count in spec.middles:
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            _wait_exited([_fork(0) for _ in range(count)])
            os.write(ready_w, b".")
            _wait_release()
        alive.append(pid)
    os.close(ready_w)
    _wait_exited(zombies)
    for _ in spec.middles:
        os.read(ready_r, 1)
    sys.stdout.write(json.dumps({"zombies": zombies, "alive": alive}) + "\n")
    sys.stdout.flush()
    _wait_release()


if __name__ == "__main__":
    _hold(HolderSpec(**json.loads(os.environ[SPEC_ENV])))
