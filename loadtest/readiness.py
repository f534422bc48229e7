"""When a server the harness started is ready for load, learned without a request.

Either a socket is listening on its port (the kernel's socket tables, see
:mod:`diagnostics.sockets`), or, with ``--ready-log REGEX``, a line of its output
matches. The harness never connects to find out: that would be a request the
server did not ask for (a child, and a zombie for a server that leaks).
"""

from __future__ import annotations

import re
import time

from diagnostics.sockets import is_listening
from loadtest.errors import ServerNotListening
from loadtest.processes import ManagedProcess

POLL = 0.02


def wait_until_ready(
    process: ManagedProcess, port: int, timeout: float, ready_log: re.Pattern[str] | None = None
) -> None:
    """Return once the server is ready; ServerNotListening if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running():
            raise ServerNotListening(exited_early(process))
        if _logged(process, ready_log) if ready_log is not None else is_listening(port):
            return
        time.sleep(POLL)
    if ready_log is not None:
        raise ServerNotListening(
            f"the server printed no line matching --ready-log {ready_log.pattern!r}"
            f" within {timeout:g} s"
        )
    raise ServerNotListening(f"the server did not open port {port} within {timeout:g} s")


def _logged(process: ManagedProcess, pattern: re.Pattern[str]) -> bool:
    text = process.log_path.read_bytes().decode("utf-8", "replace")
    return pattern.search(text) is not None


def exited_early(process: ManagedProcess) -> str:
    lines = process.log_path.read_bytes().decode("utf-8", "replace").strip().splitlines()
    last = lines[-1] if lines else "no output"
    return f"the server exited with code {process.popen.returncode} before listening: {last}"
