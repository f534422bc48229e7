"""When a server the harness started is ready for load, learned without a request.

Either a socket is listening on its port (the kernel's socket tables, see
:mod:`diagnostics.sockets`), or, with ``--ready-log REGEX``, a line of its output
matches. The harness never connects to find out: that would be a request the
server did not ask for (a child, and a zombie for a server that leaks).

**Servers that daemonize.** A server that double-forks (nginx with ``daemon on``, most
classic daemons) has its launcher exit 0 while the daemon goes on. The harness is a child
subreaper, so the daemon becomes its child: once the port listens, the adopted process
that holds the listening socket is the server from then on (sampled, stopped, and in
its pids cgroup like any other). Where it cannot be found (the harness is not a
subreaper, or nothing listens), one line says that the server daemonized and how to
keep it in the foreground.
"""

from __future__ import annotations

import re
import time

from diagnostics.errors import DiagnosticsError
from diagnostics.inherited import socket_inodes
from diagnostics.proctable import task_children
from diagnostics.sockets import is_listening, listening_inodes
from loadtest.errors import ServerNotListening
from loadtest.processes import AdoptedProcess, ManagedProcess, OwnedProcess, own_children
from loadtest.trace import TRACE

POLL = 0.02
FOREGROUND = (
    "if it daemonizes, run it in the foreground (nginx: -g 'daemon off;', apache2:"
    " -DFOREGROUND, most others: --no-daemon, --foreground or -f)"
)


def wait_until_ready(
    process: ManagedProcess, port: int, timeout: float, ready_log: re.Pattern[str] | None = None
) -> OwnedProcess:
    """The process to load once the server is ready: ``process``, or the daemon it left.

    Raises ServerNotListening if it exits (not as a daemon) or times out first.
    """
    deadline = time.monotonic() + timeout
    others = own_children() - {process.pid}
    while time.monotonic() < deadline:
        ready = _logged(process, ready_log) if ready_log is not None else is_listening(port)
        if process.running():
            if ready:
                return process
        elif process.returncode != 0:
            raise ServerNotListening(exited_early(process))
        elif ready and (daemon := _daemon(port, others)) is not None:
            TRACE(f"the server's launcher {process.pid} exited 0; following daemon {daemon}")
            return AdoptedProcess(daemon, process)
        time.sleep(POLL)
    if not process.running() and process.returncode == 0:
        raise ServerNotListening(_daemonized(process, port))
    if ready_log is not None:
        raise ServerNotListening(
            f"the server printed no line matching --ready-log {ready_log.pattern!r}"
            f" within {timeout:g} s"
        )
    raise ServerNotListening(f"the server did not open port {port} within {timeout:g} s")


def _daemon(port: int, others: set[int]) -> int | None:
    """The adopted process whose tree holds the socket listening on ``port`` (the daemon),
    among the harness's children that were not there before the server started."""
    inodes = listening_inodes(port)
    for pid in sorted(own_children() - others):
        if _tree_holds(pid, inodes):
            return pid
    return None


def _tree_holds(pid: int, inodes: set[int]) -> bool:
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            if inodes & set(socket_inodes(current).values()):
                return True
            todo.extend(task_children(current))
        except DiagnosticsError:
            continue
    return False


def _daemonized(process: ManagedProcess, port: int) -> str:
    where = (
        f"port {port} listens, but not in a process the harness adopted"
        if is_listening(port)
        else f"port {port} never listened"
    )
    return (
        f"the server exited with code 0 before it was ready ({where}): {FOREGROUND};"
        f" its last line: {_last_line(process)}"
    )


def _logged(process: ManagedProcess, pattern: re.Pattern[str]) -> bool:
    text = process.log_path.read_bytes().decode("utf-8", "replace")
    return pattern.search(text) is not None


def _last_line(process: OwnedProcess) -> str:
    lines = process.log_path.read_bytes().decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no output"


def exited_early(process: OwnedProcess) -> str:
    return (
        f"the server exited with code {process.returncode} before listening: {_last_line(process)}"
    )
