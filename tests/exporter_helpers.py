"""``python -m diagnostics exporter`` as a user runs it (a subprocess on a free port, its
URL read from its first line), and a real Prometheus scraping it; each ended by its PID."""

from __future__ import annotations

import json
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from diagnostics.exporter import RULES
from tests.server_helpers import ROOT
from tests.waiting import wait_until

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

    @property
    def target(self) -> str:
        """HOST:PORT, as a Prometheus scrape config names it."""
        return urllib.parse.urlsplit(self.url).netloc

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url, timeout=30) as answer:
            return answer.read().decode()

    def stop(self) -> tuple[int, str]:
        """SIGTERM (as a service manager stops it), then its exit status and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed (Debian: apt-get install prometheus)"
)
FOR_CLAUSE = re.compile(r"^(\s*)for: \S+$", re.MULTILINE)


def quick_rules(folder: Path, pending: str = "2s") -> Path:
    """The shipped rules with every ``for:`` shortened to ``pending``: the same expressions,
    alerts a test can wait for."""
    path = folder / "rules.yml"
    path.write_text(FOR_CLAUSE.sub(rf"\g<1>for: {pending}", RULES.read_text()))
    return path


class PrometheusProcess:
    """A real Prometheus on a free loopback port with a data folder of its own, scraping
    ``targets`` every second and evaluating ``rules`` every second; ended by its PID."""

    def __init__(self, folder: Path, targets: list[str], rules: Path) -> None:
        assert PROMETHEUS is not None
        config = folder / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)],
                    "scrape_configs": [
                        {"job_name": "reaperlab", "static_configs": [{"targets": targets}]}
                    ],
                }
            )
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(self._ready, what="Prometheus to be ready", timeout=60)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=30) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def firing(self) -> list[dict[str, str]]:
        """Labels of every alert firing now."""
        return [a["labels"] for a in self.api("alerts")["alerts"] if a["state"] == "firing"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    """A port free on loopback now (the kernel's choice for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
