"""Load generators the bench drives: wrk when it is installed, else Locust.

wrk (C, event loop) loads a forking server much harder than Locust can on a
small machine, so it shows the server's limits rather than the client's.
Locust is the fallback because it is always there (the harness needs it); it
runs as its own process, never imported (see loadtest/load.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from diagnostics.cpumeter import CpuMeter
from loadtest.drive import SATURATED_CPU
from loadtest.load import LOCUSTFILE, LoadShape, start_locust, start_timeout
from loadtest.processes import ManagedProcess
from reports.files import read_table
from reports.locust import totals_from_stats

WRK_GRACE = 15.0
"""Seconds wrk may take beyond its duration before it is killed."""
CPU_POLL = 0.1


class LoadError(Exception):
    """A load generator failed; ``str()`` is the one line to show."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    errors: int
    """wrk: socket errors plus non-2xx answers; Locust: failed requests."""


@dataclass(frozen=True, slots=True)
class LocustRun:
    result: LoadResult
    cpu_cores: float | None
    """Locust's CPU while it loaded the server, in cores (1.0 = one core busy)."""

    @property
    def client_bound(self) -> bool:
        """Locust (one process, one core) was near a full core: it, not the server, limited."""
        return self.cpu_cores is not None and self.cpu_cores >= SATURATED_CPU


class Wrk:
    name = "wrk"

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.threads = max(1, min(os.cpu_count() or 1, connections, 2))

    def describe(self) -> str:
        return f"wrk -t{self.threads} -c{self.connections}"

    def run(self, url: str, seconds: int, scratch: Path) -> LoadResult:
        command = [
            "wrk", f"-t{self.threads}", f"-c{self.connections}", f"-d{seconds}s",
            "--latency", url + "/",
        ]  # fmt: skip
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=seconds + WRK_GRACE)
        except subprocess.TimeoutExpired:
            raise LoadError(f"wrk did not finish within {seconds + WRK_GRACE:g} s") from None
        finally:
            _end(proc)
        if proc.returncode != 0:
            last = out.strip().splitlines()[-1] if out.strip() else "no output"
            raise LoadError(f"wrk exited with code {proc.returncode}: {last}")
        return parse_wrk(out)


class Locust:
    name = "locust"

    def __init__(self, connections: int) -> None:
        self.connections = connections

    def describe(self) -> str:
        return (
            f"locust (loadtest/in_locust/locustfile.py, {self.connections} users,"
            " as fast as they can)"
        )

    def run(self, url: str, seconds: int, scratch: Path) -> LoadResult:
        shape = LoadShape(users=self.connections, rate=0.0, duration=seconds)
        return run_locust(url, shape, Path(tempfile.mkdtemp(prefix="locust-", dir=scratch))).result


def pick(choice: str, connections: int) -> Wrk | Locust:
    """``auto``: wrk when it is on PATH, Locust otherwise."""
    if choice == "wrk" or (choice == "auto" and shutil.which("wrk")):
        return Wrk(connections)
    return Locust(connections)


def run_locust(url: str, shape: LoadShape, folder: Path) -> LocustRun:
    """Locust as the harness runs it, with its CPU watched while it works."""
    process = start_locust(url, shape, folder, LOCUSTFILE)
    return watch_locust(process, folder, shape.duration, start_timeout(shape))


def watch_locust(process: ManagedProcess, folder: Path, seconds: int, timeout: float) -> LocustRun:
    """Wait for a Locust process (bounded), then read its totals from ``folder/locust_stats.csv``.

    Its CPU is taken over the last 80% of its run only: the first second or two is
    Locust importing gevent, which says nothing about its headroom under load.
    """
    meter = CpuMeter(process.pid)
    series: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout
    try:
        while process.running():
            if time.monotonic() > deadline:
                raise LoadError(f"locust did not finish within {timeout:g} s")
            meter.update()
            series.append((time.monotonic(), meter.cpu_seconds))
            time.sleep(CPU_POLL)
    finally:
        process.stop()
    table = read_table(folder / "locust_stats.csv").value
    totals = totals_from_stats(table) if table is not None else None
    if totals is None or not totals.requests or totals.rps is None:
        raise LoadError(f"locust reported no requests (see {process.log_path})")
    result = LoadResult(
        rps=totals.rps,
        p50_ms=totals.p50_ms,
        p99_ms=totals.p99_ms,
        requests=totals.requests,
        errors=totals.failures or 0,
    )
    return LocustRun(result, _steady_cores(series, seconds))


def _steady_cores(series: list[tuple[float, float]], seconds: int) -> float | None:
    if len(series) < 2:
        return None
    end_time, end_cpu = series[-1]
    start_time, start_cpu = next(s for s in series if s[0] >= end_time - 0.8 * seconds)
    if end_time - start_time < CPU_POLL:
        return None
    return (end_cpu - start_cpu) / (end_time - start_time)


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk(output: str) -> LoadResult:
    """Requests/s, p50/p99 (ms), requests and errors from ``wrk --latency`` output."""
    rps, requests = _RPS.search(output), _REQUESTS.search(output)
    if rps is None or requests is None:
        raise LoadError("wrk printed no Requests/sec line")
    percentiles = {
        int(p): float(value) * _UNIT_MS[unit] for p, value, unit in _PERCENTILE.findall(output)
    }
    socket_errors, non_2xx = _SOCKET_ERRORS.search(output), _NON_2XX.search(output)
    errors = sum(map(int, socket_errors.groups())) if socket_errors else 0
    return LoadResult(
        rps=float(rps.group(1)),
        p50_ms=percentiles.get(50),
        p99_ms=percentiles.get(99),
        requests=int(requests.group(1)),
        errors=errors + (int(non_2xx.group(1)) if non_2xx else 0),
    )


def _end(proc: subprocess.Popen[str]) -> None:
    """Kill a load generator's whole session if it is still running, and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate()
