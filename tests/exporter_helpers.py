"""``python -m diagnostics exporter`` as a user runs it: a subprocess on a free port,
its URL read from its first line, ended by its PID."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
import urllib.request

from tests.server_helpers import ROOT

BANNER = re.compile(r"Serving metrics on (?P<url>http://\S+/metrics) \(")


class ExporterProcess:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "diagnostics", "exporter", "--listen", "127.0.0.1:0", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        line = self._first_line(timeout=30)
        match = BANNER.match(line)
        if match is None:
            self.stop()
            raise AssertionError(f"unexpected first line: {line!r}")
        self.url = match["url"]

    def _first_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.stop()
                raise AssertionError("the exporter printed nothing")
        return self.proc.stdout.readline()

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url, timeout=30) as answer:
            return answer.read().decode()

    def stop(self) -> tuple[int, str]:
        """SIGTERM (as a service manager stops it), then its exit status and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err
