"""``reaperlab exporter``: who holds zombies, how fast they grow, and how long until fork()
fails, as Prometheus metrics read at each scrape.

A count of zombies is what other exporters give (node_exporter's processes collector,
process-exporter's zombie threads per name group). The three facts a person on call
needs are which parent holds them (it must reap them, or be fixed), how fast they grow,
and how long until the PID limit that applies is reached and every fork fails. Each
scrape reads them afresh, in prometheus_client's custom-collector form (``collect()``
runs at scrape time; no thread samples in the background):

- zombies per parent, from a :mod:`~diagnostics.census` of the host or of one process
  tree (``--pid``). Only the ``--top`` parents holding the most get their own series;
  the rest are summed into one series with ``pid="other"``, so that
  ``sum(reaperlab_parent_zombies)`` is always ``reaperlab_zombies``.
- growth: the net change of each count over the last ``--window`` seconds of scrapes,
  per minute. It needs two scrapes inside the window, so the window must be longer
  than the scrape interval (several times longer to smooth it).
- the limit reached first (:mod:`~diagnostics.limits`): for each parent shown, and for
  the host (pid_max, threads-max), every limit that applies is read with its use;
  the use of each is followed over the window, and the limit whose use reaches it
  first at that rate is the one shown, with the seconds left (+Inf when its use does
  not grow; no series until the window holds two scrapes). The rate is of the limit's
  own use (``pids.current`` for a cgroup, the kernel's task count for pid_max), so
  every task counts, a leak in a sibling process too.
- refused forks: ``pids.events`` of each pids cgroup of a parent shown (and of the
  target, with ``--pid``), as a counter, where there is one.
- where each figure comes from: ``reaperlab_exporter_info``, plus a ``source`` label on
  each limit; and what the scrape itself cost.

The rules in ``diagnostics/prometheus/rules.yml`` alert on these series.
"""

from __future__ import annotations

import functools
import os
import re
import select
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from diagnostics.census import HostCensus, TreeCensus
from diagnostics.errors import DiagnosticsError, NoSuchProcess
from diagnostics.limits import (
    Hierarchy,
    Limit,
    Limits,
    host_limits,
    pids_cgroup,
    pids_hierarchy,
    process_limits,
    tasks_by_user,
)
from diagnostics.proctable import read_proc_file, read_stat

DEFAULT_LISTEN = "127.0.0.1:9812"
DEFAULT_TOP = 10
DEFAULT_WINDOW_S = 300.0
RULES = Path(__file__).resolve().parent / "prometheus" / "rules.yml"
"""The alerting rules shipped with the exporter (package data)."""

OTHER = "other"
"""The ``pid`` label of the series that sums the parents beyond the top N."""
CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
"""Docker, containerd, CRI-O and podman name a container's cgroup after its 64-hex id."""

PARENT = ("pid", "command", "cgroup", "container_id")
LIMIT = ("limit", "scope")

Kind = Literal["gauge", "counter", "info"]


@dataclass(frozen=True, slots=True)
class Spec:
    """One metric family: its name, type, help and labels, written once."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()

    def family(self) -> Metric:
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help, labels=self.labels)
        if self.kind == "info":
            return InfoMetricFamily(self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


SPECS = {
    spec.name: spec
    for spec in (
        Spec("reaperlab_zombies", "gauge", "Zombies in scope (the host, or the tree of --pid)."),
        Spec(
            "reaperlab_zombie_growth_per_minute",
            "gauge",
            "Net change of reaperlab_zombies over the window, per minute.",
        ),
        Spec("reaperlab_parents_holding_zombies", "gauge", "Processes holding zombie children."),
        Spec(
            "reaperlab_parent_zombies",
            "gauge",
            'Zombie children of a parent; pid="other" sums the parents beyond the top N.',
            PARENT,
        ),
        Spec(
            "reaperlab_parent_zombie_growth_per_minute",
            "gauge",
            "Net change of a parent's zombie children over the window, per minute.",
            PARENT,
        ),
        Spec(
            "reaperlab_parent_pid_limit",
            "gauge",
            "Tasks allowed by the PID limit a parent's forks reach first (limit: pids.max,"
            " pid_max, threads-max or RLIMIT_NPROC; source: the files read).",
            (*PARENT, *LIMIT, "source"),
        ),
        Spec(
            "reaperlab_parent_pid_limit_used",
            "gauge",
            "Tasks counted against that limit now, zombies included.",
            (*PARENT, *LIMIT),
        ),
        Spec(
            "reaperlab_parent_pid_limit_seconds_left",
            "gauge",
            "Seconds until that limit is reached at its use's growth over the window"
            " (+Inf: not growing).",
            (*PARENT, *LIMIT),
        ),
        Spec(
            "reaperlab_host_pid_limit",
            "gauge",
            "Tasks allowed by the host-wide limit reached first (pid_max or threads-max).",
            (*LIMIT, "source"),
        ),
        Spec(
            "reaperlab_host_pid_limit_used",
            "gauge",
            "Tasks on the host now (the kernel's count), zombies included.",
            LIMIT,
        ),
        Spec(
            "reaperlab_host_pid_limit_seconds_left",
            "gauge",
            "Seconds until that limit is reached at the growth of the host's tasks over the"
            " window (+Inf: not growing).",
            LIMIT,
        ),
        Spec(
            "reaperlab_cgroup_fork_failures",
            "counter",
            "Forks the pids controller refused (pids.events max) in a parent's pids cgroup.",
            ("cgroup", "source"),
        ),
        Spec(
            "reaperlab_scrape_duration_seconds",
            "gauge",
            "Wall time this scrape took to read the figures.",
        ),
        Spec(
            "reaperlab_exporter",
            "info",
            "What the exporter watches and where each figure is read from.",
            ("scope", "zombies_source", "limits_source", "window_seconds", "top"),
        ),
    )
}

LIMITS_SOURCE = (
    "pids.max and pids.current of the pids cgroup and its ancestors,"
    " /proc/sys/kernel/pid_max, /proc/sys/kernel/threads-max, /proc/loadavg (tasks),"
    " /proc/PID/limits (RLIMIT_NPROC, counted from /proc/*/status where it can bind)"
)


class Window:
    """Values seen over the last ``seconds``, per key, and how fast each changes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._points: dict[Hashable, deque[tuple[float, float]]] = {}

    def add(self, now: float, values: Mapping[Any, float]) -> None:
        """Record this scrape's values; forget points older than the window."""
        for key, value in values.items():
            self._points.setdefault(key, deque()).append((now, value))
        horizon = now - self.seconds
        for key in list(self._points):
            points = self._points[key]
            while points and points[0][0] < horizon:
                points.popleft()
            if not points:
                del self._points[key]

    def per_second(self, key: Hashable) -> float | None:
        """Net change per second from the oldest point in the window to the newest;
        None with fewer than two points."""
        points = self._points.get(key)
        if not points or len(points) < 2:
            return None
        (t0, v0), (t1, v1) = points[0], points[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else None


@dataclass(frozen=True, slots=True)
class Parent:
    """A parent shown in its own series, as read at this scrape."""

    pid: int
    zombies: int
    started: float
    labels: tuple[str, str, str, str]
    limits: Limits


class ZombieCollector:
    """The exporter's prometheus_client collector: every figure is read in :meth:`collect`.

    ``pid`` None watches the whole host; ``clock`` times the scrapes for the rates.
    Scrapes may come concurrently (prometheus_client serves each in a thread); they are
    taken one at a time, since the census and the windows carry state from one scrape
    to the next.
    """

    def __init__(
        self,
        pid: int | None = None,
        top: int = DEFAULT_TOP,
        window: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pid = pid
        self.top = top
        self._clock = clock
        self.census = HostCensus() if pid is None else TreeCensus(pid)
        self.census.take()  # the host census opens its pidfds now, not at the first scrape
        self.scope = "host" if pid is None else f"tree of PID {pid}"
        self._zombies = Window(window)
        self._uses = Window(window)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Give back what the census holds (a descriptor per process, on the host)."""
        self.census.close()

    def describe(self) -> Iterator[Metric]:
        """The families, empty: how the registry learns the names without a scrape."""
        for spec in SPECS.values():
            yield spec.family()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            started = time.perf_counter()
            families = self._read(self._clock())
            duration = families["reaperlab_scrape_duration_seconds"]
            duration.add_metric([], time.perf_counter() - started)
        yield from families.values()

    def _read(self, now: float) -> dict[str, Any]:
        """Every family of this scrape, by name (Any: each kind has its own add_metric)."""
        families: dict[str, Any] = {name: spec.family() for name, spec in SPECS.items()}
        census = self.census.take()
        host = host_limits()
        hierarchy = pids_hierarchy()
        ranked = sorted(census.holders.items(), key=lambda item: (-item[1], item[0]))
        tasks = functools.cache(tasks_by_user)  # one count of every user's tasks, if any
        parents = [
            parent
            for pid, zombies in ranked[: self.top]
            if (parent := _parent(pid, zombies, host, hierarchy, tasks)) is not None
        ]
        self._remember(now, census.zombies, host, parents)

        families["reaperlab_zombies"].add_metric([], census.zombies)
        self._growth(families["reaperlab_zombie_growth_per_minute"], [], "all")
        families["reaperlab_parents_holding_zombies"].add_metric([], len(census.holders))
        rest = sum(zombies for _, zombies in ranked) - sum(p.zombies for p in parents)
        if rest or len(parents) < len(ranked):
            families["reaperlab_parent_zombies"].add_metric([OTHER, "", "", ""], rest)
        for parent in parents:
            labels = list(parent.labels)
            families["reaperlab_parent_zombies"].add_metric(labels, parent.zombies)
            self._growth(
                families["reaperlab_parent_zombie_growth_per_minute"],
                labels,
                (parent.pid, parent.started),
            )
            self._limit(families, "reaperlab_parent_pid_limit", labels, parent.limits)
        self._limit(families, "reaperlab_host_pid_limit", [], host)
        self._fork_failures(families["reaperlab_cgroup_fork_failures"], parents, hierarchy)
        families["reaperlab_exporter"].add_metric(
            [],
            {
                "scope": self.scope,
                "zombies_source": self.census.method,
                "limits_source": LIMITS_SOURCE,
                "window_seconds": f"{self._zombies.seconds:g}",
                "top": str(self.top),
            },
        )
        return families

    def _remember(self, now: float, zombies: int, host: Limits, parents: list[Parent]) -> None:
        counts: dict[Hashable, float] = {"all": zombies}
        counts.update({(p.pid, p.started): p.zombies for p in parents})
        self._zombies.add(now, counts)
        uses = {limit.key: limit.used for limit in host.limits}
        for parent in parents:
            uses.update({limit.key: limit.used for limit in parent.limits.limits})
        self._uses.add(now, uses)

    def _growth(self, family: Any, labels: list[str], key: Hashable) -> None:
        rate = self._zombies.per_second(key)
        if rate is not None:
            family.add_metric(labels, rate * 60.0)

    def _limit(
        self, families: dict[str, Any], prefix: str, labels: list[str], limits: Limits
    ) -> None:
        """The limit reached first, its use and the seconds left, under ``prefix``."""
        limit, seconds = limits.first_reached(self._rate)
        own = [*labels, limit.kind, limit.scope]
        families[prefix].add_metric([*own, limit.source], limit.value)
        families[f"{prefix}_used"].add_metric(own, limit.used)
        if seconds is not None:
            families[f"{prefix}_seconds_left"].add_metric(own, seconds)

    def _rate(self, limit: Limit) -> float | None:
        return self._uses.per_second(limit.key)

    def _fork_failures(
        self, family: Any, parents: list[Parent], hierarchy: Hierarchy | None
    ) -> None:
        cgroups = [parent.limits.cgroup for parent in parents]
        if self.pid is not None:  # the target's own cgroup, zombies or not
            try:
                cgroups.append(pids_cgroup(self.pid, hierarchy))
            except OSError:
                pass
        seen = set()
        for cgroup in cgroups:
            if cgroup is None or cgroup.fork_failures is None or cgroup.path in seen:
                continue
            seen.add(cgroup.path)
            source = f"{cgroup.directory}/pids.events"
            family.add_metric([cgroup.path, source], cgroup.fork_failures)


def _parent(
    pid: int,
    zombies: int,
    host: Limits,
    hierarchy: Hierarchy | None,
    tasks: Callable[[], Counter[int]],
) -> Parent | None:
    """What a parent's series need; None when it exited (or hid) meanwhile."""
    try:
        started = read_stat(pid).started
        command = read_proc_file(f"/proc/{pid}/comm", pid).decode(errors="replace").strip()
        limits = process_limits(pid, host, hierarchy, tasks)
    except (DiagnosticsError, OSError):
        return None
    cgroup = limits.cgroup.path if limits.cgroup else ""
    container = CONTAINER_ID.findall(cgroup)
    labels = (str(pid), command, cgroup, container[-1] if container else "")
    return Parent(pid, zombies, started, labels, limits)


# ------------------------------------------------------------------ serving


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def url(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}/metrics"


def parse_listen(text: str) -> Address:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6). The host must be written out: listening
    beyond loopback is something to ask for, not a default; ``0.0.0.0`` is every IPv4
    interface. ValueError with a one-line reason otherwise."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host:
        raise ValueError(
            f"--listen wants HOST:PORT, got {text!r} (127.0.0.1:9812; 0.0.0.0:9812 for"
            " every interface)"
        )
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen: bad port {port!r}")
    return Address(host, int(port))


class ListenError(DiagnosticsError):
    """The address cannot be listened on; ``str()`` says which and why."""


class TargetExited(DiagnosticsError):
    """The process tree the exporter watched is gone; ``str()`` says so."""


def serve(collector: ZombieCollector, address: Address) -> None:
    """Serve ``/metrics`` until interrupted (KeyboardInterrupt) or, with a target, until
    it exits (TargetExited). Prints the URL, with the port bound, once listening.

    Raises ListenError when the address cannot be bound.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        server, thread = start_http_server(address.port, address.host, registry)
    except OSError as error:  # socket.gaierror included: a host name that does not resolve
        why = error.strerror or str(error)
        raise ListenError(f"cannot listen on {address.host}:{address.port}: {why}") from None
    try:
        print(
            f"Serving metrics on {address.url(server.server_port)}"
            f" ({collector.scope}; pid {os.getpid()})",
            flush=True,
        )
        if collector.pid is None:
            threading.Event().wait()
        else:
            wait_for_exit(collector.pid)
            raise TargetExited(f"PID {collector.pid} exited; nothing left to export")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def wait_for_exit(pid: int) -> None:
    """Block until ``pid`` exits (a pidfd turns readable), or is already gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (OSError, AttributeError):  # no pidfds: look once a second
        while _exists(pid):
            time.sleep(1.0)
        return
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


def _exists(pid: int) -> bool:
    try:
        return not read_stat(pid).zombie
    except NoSuchProcess:
        return False
