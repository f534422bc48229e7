"""The path a user's monitoring takes: a no-reaper server leaks, the exporter runs beside it
as a user runs it, a real Prometheus scrapes it every second, evaluates the shipped rules
(their ``for:`` shortened to 2 s, the expressions as shipped), and its HTTP API is asked
for the zombie series and the alerts.

Every load is bounded (a request every 100 ms, at most ``REQUESTS``); the server, the
exporter and Prometheus are ended by their PIDs whatever happens.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cgroup_helpers import MakeCgroup, make_cgroup, needs_cgroup
from tests.exporter_helpers import ExporterProcess, PrometheusProcess, needs_prometheus, quick_rules
from tests.server_helpers import ServerProcess
from tests.waiting import wait_until

__all__ = ["make_cgroup"]  # the fixture, used by name

COMMAND = Path(sys.executable).name[:15]
"""What /proc/PID/comm says of a process this interpreter runs."""
PACE_S = 0.1
ALERT_TIMEOUT_S = 60.0


@contextmanager
def leaking(server: ServerProcess, requests: int) -> Iterator[threading.Event]:
    """Send one request every PACE_S, at most ``requests``, until the block ends; the
    event is set once they have all been sent."""
    stop, done = threading.Event(), threading.Event()

    def drive() -> None:
        for _ in range(requests):
            if stop.wait(PACE_S):
                return
            server.get("/Leak")
        done.set()

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        yield done
    finally:
        stop.set()
        driver.join(timeout=30)


@contextmanager
def monitored(server: ServerProcess, folder: Path) -> Iterator[PrometheusProcess]:
    """The exporter on the server's tree (a 5 s window) and Prometheus scraping it."""
    exporter = ExporterProcess("--pid", str(server.pid), "--window", "5")
    try:
        prometheus = PrometheusProcess(folder, [exporter.target], quick_rules(folder))
        try:
            yield prometheus
        finally:
            prometheus.stop()
    finally:
        exporter.stop()


def wait_for_alert(prometheus: PrometheusProcess, name: str, **labels: str) -> dict[str, str]:
    found: list[dict[str, str]] = []

    def firing() -> bool:
        found[:] = [
            alert
            for alert in prometheus.firing()
            if alert["alertname"] == name and labels.items() <= alert.items()
        ]
        return bool(found)

    wait_until(firing, what=f"{name} {labels} to fire", timeout=ALERT_TIMEOUT_S)
    return found[0]


def latest(prometheus: PrometheusProcess, query: str) -> list[tuple[dict[str, str], float]]:
    return [
        (result["metric"], float(result["value"][1]))
        for result in prometheus.api("query", query=query)["result"]
    ]


@pytest.mark.slow
@needs_prometheus
def test_prometheus_sees_the_zombies_and_fires_the_leak_alert(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    server = start_server("--reaper", "none")
    pid = str(server.pid)
    with monitored(server, tmp_path) as prometheus, leaking(server, 100) as done:
        alert = wait_for_alert(prometheus, "ZombieLeak", pid=pid)
        assert alert["command"] == COMMAND and alert["severity"] == "warning"
        done.wait(timeout=60)
        zombies = len(server.zombie_pids())
        assert zombies == 100  # one per request, none reaped
        query = f'reaperlab_parent_zombies{{pid="{pid}"}}'
        wait_until(
            lambda: [value for _, value in latest(prometheus, query)] == [zombies],
            what=f"Prometheus to hold the last count, {zombies}",
        )
        history = prometheus.api("query", query=f"{query}[30s]")["result"][0]["values"]
        counts = [float(value) for _, value in history]
        assert counts == sorted(counts) and counts[0] < counts[-1]  # it rose, scrape by scrape


@pytest.mark.slow
@needs_prometheus
@needs_cgroup
def test_prometheus_fires_the_limit_and_refusal_alerts_of_a_pids_cgroup(
    tmp_path: Path, start_server: Callable[..., ServerProcess], make_cgroup: MakeCgroup
) -> None:
    group = make_cgroup("prometheus", 80)
    join = ("sh", "-c", f'echo $$ > {group.procs_file} && exec "$@"', "sh")
    server = start_server("--reaper", "none", prefix=join)
    pid = str(server.pid)
    with monitored(server, tmp_path) as prometheus, leaking(server, 120):
        soon = wait_for_alert(prometheus, "PidLimitSoon", pid=pid)
        assert (soon["limit"], soon["scope"]) == ("pids.max", f"cgroup {soon['cgroup']}")
        assert soon["cgroup"].endswith(group.path.name)
        refused = wait_for_alert(prometheus, "ForkRefused", cgroup=soon["cgroup"])
        assert refused["source"] == f"{group.path}/pids.events"
        assert len(server.zombie_pids()) == 80 - 1  # the server holds the last place
