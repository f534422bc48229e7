"""Run the real server as a subprocess and talk to it over loopback.

The server always runs in its own session (process group), so a test that
fails halfway still ends the server and every child it forked with one killpg.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import psutil

from tests.http_check import parse_answer
from tests.waiting import wait_until as wait_until

ROOT = Path(__file__).resolve().parent.parent
BANNER = re.compile(r"Serving HTTP on http://(?P<host>[^ ]+):(?P<port>\d+)/ \(pid (?P<pid>\d+)")


SERVER = (sys.executable, "-m", "server")
REAPERLAB_SERVE = (str(Path(sys.executable).with_name("reaperlab")), "serve")
"""The console command of this environment (``make install`` puts it beside python)."""


class ServerProcess:
    """One ``python -m server --port 0`` process, its address read from its first line.

    ``launcher`` is what starts the server (``REAPERLAB_SERVE`` for the console
    command); ``prefix`` what runs it (prlimit, a shell).
    """

    def __init__(
        self, args: Iterable[str] = (), prefix: Iterable[str] = (), launcher: Iterable[str] = SERVER
    ) -> None:
        command = [*prefix, *launcher, "--port", "0", *args]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.banner = self._read_banner(timeout=15)
        match = BANNER.match(self.banner)
        assert match, f"unexpected first line: {self.banner!r}"
        self.port = int(match["port"])
        self.pid = int(match["pid"])
        self.stdout_tail = ""

    def _read_banner(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.kill()
                raise AssertionError("server printed nothing")
        line = self.proc.stdout.readline()
        if not line:
            _out, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"server exited early: {err.strip()}")
        return line.rstrip("\n")

    def request(self, data: bytes, timeout: float = 10.0) -> bytes:
        """Send raw bytes, read the answer until the server closes; h11 checks any answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as conn:
            conn.sendall(data)
            answer = read_to_eof(conn)
        if answer:
            parse_answer(answer, data)
        return answer

    def get(self, path: str = "/") -> bytes:
        return self.request(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.pid).children()

    def zombie_pids(self) -> list[int]:
        return [child.pid for child in self.children() if _is_zombie(child)]

    def live_children(self) -> list[int]:
        return [child.pid for child in self.children() if not _is_zombie(child)]

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> dict[str, int]:
        """Signal the server, wait for it, return the counters from its last line."""
        self.proc.send_signal(signum)
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, f"server exited {self.proc.returncode}: {err}"
        self.stdout_tail = out
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        """End the server and every child of its group, and reap them (cleanup path).

        Once the server is reaped, its children have all been handed to pytest,
        the subreaper (--child-leaks): each is dead or dying of the SIGKILL, so
        waiting for the whole group ends.
        """
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.communicate(timeout=30)
            reap_group(self.proc.pid)


def read_to_eof(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(conn: socket.socket) -> bytes:
    """Read one answer by its Content-Length: needed when the server never closes (fd leak)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536) or _eof()
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        body += conn.recv(65536) or _eof()
    return head + b"\r\n\r\n" + body


def _eof() -> bytes:
    raise AssertionError("connection closed before a whole answer arrived")


def _is_zombie(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def concurrent_requests(port: int, count: int, path: str = "/") -> list[bytes]:
    """Open ``count`` connections first, then send on each: all are in flight at once."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    try:
        for conn in conns:
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        answers = [read_to_eof(conn) for conn in conns]
        for answer in answers:
            parse_answer(answer)  # h11 reads each
        return answers
    finally:
        for conn in conns:
            conn.close()


def reap_group(pgid: int) -> None:
    """Reap every child of ours in process group ``pgid`` (blocking until each has exited)."""
    try:
        while True:
            os.waitpid(-pgid, 0)
    except ChildProcessError:
        pass


def zombie_children_of_self() -> list[int]:
    """Zombies this (subreaper) process holds: a killed server's children come here."""
    return [child.pid for child in psutil.Process().children() if _is_zombie(child)]


def reap_adopted(pids: Iterable[int]) -> None:
    """Reap zombies this (subreaper) process inherited, each by its own PID."""
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
