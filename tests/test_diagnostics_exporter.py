"""The exporter: what a scrape serves, on real processes holding known zombies.

Scrapes go through prometheus_client's own exposition and parser, as Prometheus reads
them. The growth and time-left figures are checked with a clock the test moves, so
the expected values are exact; the real clock and a real leak are in
test_exporter_time_to_limit.py and test_exporter_prometheus.py.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from bench.holder import HolderSpec, ZombieHolder
from diagnostics.exporter import OTHER, ZombieCollector, parse_listen
from tests import diag_helpers as h
from tests.cgroup_helpers import MakeCgroup, make_cgroup, needs_cgroup, start_in_cgroup
from tests.cli_runner import RUNNERS, assert_one_line_error, runner_for
from tests.diag_helpers import end_by_stdin
from tests.exporter_helpers import ExporterProcess
from tests.leak_helpers import Leaker
from tests.test_diagnostics_limits import (
    SYSTEM_PYTHON,
    UNUSED_UID,
    as_user,
    needs_root_and_prlimit,
)

__all__ = ["make_cgroup"]  # the fixture, used by name

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Scraper:
    """A collector in a registry of its own, scraped as text and parsed back."""

    def __init__(self, collector: ZombieCollector) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(collector)

    def scrape(self) -> Series:
        text = generate_latest(self.registry).decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def only(series: Series, name: str, **labels: str) -> float:
    """The value of the one series named ``name`` whose labels include ``labels``."""
    found = [v for (n, ls), v in series.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def labels_of(series: Series, name: str) -> list[dict[str, str]]:
    return [dict(ls) for (n, ls), _ in series.items() if n == name]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def holder() -> Iterator[ZombieHolder]:
    """6 zombies, and two live children holding 3 and 2."""
    with ZombieHolder(HolderSpec(exits=[0] * 6, alive=1, middles=[3, 2])) as made:
        yield made


def test_a_tree_scrape_names_each_parent_and_sums_the_rest(holder: ZombieHolder) -> None:
    series = Scraper(ZombieCollector(holder.pid, top=2)).scrape()
    middles = holder.children.alive[-2:]
    assert only(series, "reaperlab_zombies") == 11
    assert only(series, "reaperlab_parents_holding_zombies") == 3
    parents = {ls["pid"]: ls for ls in labels_of(series, "reaperlab_parent_zombies")}
    assert set(parents) == {str(holder.pid), str(middles[0]), OTHER}  # top 2, then the rest
    assert only(series, "reaperlab_parent_zombies", pid=str(holder.pid)) == 6
    assert only(series, "reaperlab_parent_zombies", pid=str(middles[0])) == 3
    assert only(series, "reaperlab_parent_zombies", pid=OTHER) == 2
    assert parents[str(holder.pid)]["command"] == Path(sys.executable).name[:15]  # its comm
    assert parents[str(holder.pid)]["cgroup"].startswith("/")
    info = labels_of(series, "reaperlab_exporter_info")[0]
    assert info["scope"] == f"tree of PID {holder.pid}" and info["top"] == "2"
    assert "children" in info["zombies_source"]
    assert only(series, "reaperlab_scrape_duration_seconds") > 0


def test_the_first_scrape_has_no_rates_and_says_nothing_of_them(holder: ZombieHolder) -> None:
    series = Scraper(ZombieCollector(holder.pid)).scrape()
    for name in (
        "reaperlab_zombie_growth_per_minute",
        "reaperlab_parent_zombie_growth_per_minute",
        "reaperlab_parent_pid_limit_seconds_left",
        "reaperlab_host_pid_limit_seconds_left",
    ):
        assert labels_of(series, name) == [], name
    limit = labels_of(series, "reaperlab_host_pid_limit")[0]
    assert limit["limit"] in ("pid_max", "threads-max") and "/proc/sys/kernel" in limit["source"]


def test_host_scope_finds_the_holder_among_every_process(holder: ZombieHolder) -> None:
    collector = ZombieCollector(None, top=1000)
    series = Scraper(collector).scrape()
    collector.close()
    assert only(series, "reaperlab_parent_zombies", pid=str(holder.pid)) == 6
    total = sum(v for (n, _), v in series.items() if n == "reaperlab_parent_zombies")
    assert total == only(series, "reaperlab_zombies") >= 11


@pytest.fixture
def leaker() -> Iterator[Leaker]:
    made = Leaker()
    yield made
    made.end()


def test_growth_is_the_net_change_over_the_window_per_minute(leaker: Leaker) -> None:
    clock = Clock()
    scraper = Scraper(ZombieCollector(leaker.pid, window=60.0, clock=clock))
    leaker.leak(2)
    scraper.scrape()
    leaker.leak(5)
    clock.now += 10.0
    series = scraper.scrape()
    assert only(series, "reaperlab_parent_zombie_growth_per_minute", pid=str(leaker.pid)) == 30.0
    assert only(series, "reaperlab_zombie_growth_per_minute") == 30.0
    clock.now += 61.0  # both earlier scrapes leave the window: one point, no rate
    assert labels_of(scraper.scrape(), "reaperlab_parent_zombie_growth_per_minute") == []


@needs_cgroup
def test_a_parent_s_pids_limit_its_use_the_time_left_and_refused_forks(
    make_cgroup: MakeCgroup,
) -> None:
    group = make_cgroup("exporter-limit", 40)
    leaker = Leaker(group.procs_file)
    try:
        clock = Clock()
        scraper = Scraper(ZombieCollector(leaker.pid, window=60.0, clock=clock))
        leaker.leak(9)
        first = scraper.scrape()
        pid = str(leaker.pid)
        assert only(first, "reaperlab_parent_pid_limit", pid=pid, limit="pids.max") == 40
        assert only(first, "reaperlab_parent_pid_limit_used", pid=pid) == 10  # itself + 9
        cgroup = labels_of(first, "reaperlab_parent_zombies")[0]["cgroup"]
        assert cgroup.endswith(group.path.name)
        assert only(first, "reaperlab_cgroup_fork_failures_total", cgroup=cgroup) == 0
        leaker.leak(10)
        clock.now += 5.0  # 10 more tasks in 5 s: 2 a second, 20 left: 10 s
        second = scraper.scrape()
        assert only(second, "reaperlab_parent_pid_limit_seconds_left", pid=pid) == 10.0
        assert only(second, "reaperlab_parent_pid_limit_used", pid=pid) == 20
        sibling, refused = start_in_cgroup(group, zombies=30)  # 21 in use: 19 more fit
        try:
            assert refused == 11
            third = scraper.scrape()
            assert only(third, "reaperlab_cgroup_fork_failures_total", cgroup=cgroup) == 11
        finally:
            end_by_stdin(sibling)
    finally:
        leaker.end()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9812", ("127.0.0.1", 9812)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9812", ("::1", 9812)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    address = parse_listen(text)
    assert (address.host, address.port) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", ":9812"], "--listen wants HOST:PORT"),
        (["--listen", "9812"], "--listen wants HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], "bad port"),
        (["--top", "0"], "--top"),
        (["--window", "0"], "--window"),
        (["--pid", "0"], "--pid"),
        (["--pid", str(h.MISSING_PID)], f"no process with PID {h.MISSING_PID}"),
        (["--frobnicate"], "unrecognized"),
    ],
)
@pytest.mark.parametrize("runner", RUNNERS)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, runner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = runner_for("diagnostics", runner, capsys)
    assert_one_line_error(run("exporter", "--listen", "127.0.0.1:0", *args), message)


@pytest.mark.slow
def test_served_over_http_and_stopped_by_sigterm(holder: ZombieHolder) -> None:
    exporter = ExporterProcess("--pid", str(holder.pid))
    try:
        assert exporter.url.startswith("http://127.0.0.1:")
        text = exporter.metrics()
        assert 'reaperlab_parent_zombies{cgroup="' in text
        series = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert only(series, "reaperlab_parent_zombies", pid=str(holder.pid)) == 6
    finally:
        status, err = exporter.stop()
    assert (status, err) == (0, "")


@pytest.mark.slow
def test_the_exporter_ends_with_its_target_and_says_so() -> None:
    target = h.spawn("import sys; sys.stdin.read()")
    exporter = ExporterProcess("--pid", str(target.pid))
    try:
        h.end_by_stdin(target)
        exporter.proc.wait(timeout=30)
    finally:
        status, err = exporter.stop()
    assert status == 1
    assert err == f"diagnostics exporter: PID {target.pid} exited; nothing left to export\n"


@pytest.mark.slow
def test_an_address_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = h.run_cli("exporter", "--listen", f"127.0.0.1:{port}")
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}: Address already in use")


@needs_root_and_prlimit
def test_a_parent_whose_user_limit_binds_shows_rlimit_nproc() -> None:
    helper, _ = start_in_cgroup(None, zombies=4, prefix=as_user("50"), python=SYSTEM_PYTHON)
    try:
        series = Scraper(ZombieCollector(helper.pid)).scrape()
        pid = str(helper.pid)
        labels = labels_of(series, "reaperlab_parent_pid_limit")[0]
        assert (labels["limit"], labels["scope"]) == ("RLIMIT_NPROC", f"uid {UNUSED_UID}")
        assert labels["source"] == f"/proc/{pid}/limits, /proc/*/status"
        assert only(series, "reaperlab_parent_pid_limit", pid=pid) == 50
        assert only(series, "reaperlab_parent_pid_limit_used", pid=pid) == 1 + 4
    finally:
        end_by_stdin(helper)
