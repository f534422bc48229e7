"""The servers the bench compares, each started as its own process on loopback.

Ours is started exactly as the harness starts it. The two others answer ``GET /``
with the same bytes ours sends, so only the serving differs:

- the standard library's ``socketserver.ForkingTCPServer`` (it polls for exited
  children every 0.5 s and caps them at 40);
- a minimal fork-per-connection server in the tutorial's style: no parsing and no
  timeouts, but it reaps (the tutorial's grim_reaper) and closes its descriptors,
  so it runs indefinitely without leaking.

Their source lives here and is written to the scratch folder, so what was measured
is exactly what this file says.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from loadtest.scenarios import SCENARIOS
from loadtest.target import Target, start_external, start_ours
from server.protocol import answer

ANSWER, _ = answer(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
"""What ours answers to ``GET /``; the other contenders send these very bytes."""

START_TIMEOUT = 15.0

_FORKING_TCP_SERVER = """\
import socketserver, sys

ANSWER = {answer!r}


class Greeter(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(4096)
        self.request.sendall(ANSWER)


class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True


with Server(("127.0.0.1", int(sys.argv[1])), Greeter) as server:
    server.serve_forever()
"""

_MINIMAL = """\
import os, signal, socket, sys

ANSWER = {answer!r}


def grim_reaper(signum, frame):
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(1024)
signal.signal(signal.SIGCHLD, grim_reaper)
while True:
    conn, _address = listener.accept()
    if os.fork() == 0:
        listener.close()
        conn.recv(1024)
        conn.sendall(ANSWER)
        conn.close()
        os._exit(0)
    conn.close()
"""


@dataclass(frozen=True, slots=True)
class Contender:
    key: str
    """Short name used in the JSON file."""
    label: str
    """What the table calls it."""
    script: str | None
    """Python source started as ``python FILE PORT``; None for ours (``python -m server``)."""

    def start(self, scratch: Path) -> Target:
        """Start it on a loopback port and return once that port is open."""
        folder = scratch / self.key
        folder.mkdir(parents=True, exist_ok=True)
        if self.script is None:
            return start_ours(SCENARIOS["reaper-loop"], 0, folder, START_TIMEOUT)
        path = folder / f"{self.key}.py"
        path.write_text(self.script.format(answer=ANSWER))
        command = f"{shlex.quote(sys.executable)} {shlex.quote(str(path))} {{port}}"
        return start_external(command, folder, START_TIMEOUT)


OURS = Contender("ours", "ours: python -m server --reaper loop", None)
FORKING_TCP = Contender("forking_tcp_server", "socketserver.ForkingTCPServer", _FORKING_TCP_SERVER)
MINIMAL = Contender("minimal", "minimal fork-per-connection (tutorial)", _MINIMAL)
CONTENDERS = (OURS, FORKING_TCP, MINIMAL)
