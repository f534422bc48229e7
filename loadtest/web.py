"""``--web``: Locust's web UI drives the load; the harness keeps watching and recording.

Locust runs in its own process (gevent must never be imported here), so what the
sampler sees reaches its UI through a file: each tick the harness rewrites
:data:`LIVE_FILE` atomically in the scenario's folder, and loadtest/in_locust/zombies_tab.py,
loaded in Locust's process by the hooks, serves it as the "Zombies" tab's table with
every stats poll of the UI. The file holds figures the harness measured; the tab only
shows them.

In the UI the user sets the number of users: each keeps the ``rate / users`` requests
a second the asked numbers give it (loadtest/load.py passes it to every run), so
raising the users raises the load with them.
Locust's stop button stops the load; the run goes on until Ctrl-C or ``--duration``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from diagnostics.contract import ScenarioRecord
from diagnostics.events import TreeCounts
from diagnostics.sampler import Sample

LIVE_FILE = "live.json"
"""The harness's figures for the Zombies tab, rewritten each tick while the UI is up."""
DEFAULT_PORT = 8089
"""Locust's own default web port."""
WEB_HOST = "127.0.0.1"
"""The UI starts load on demand: it is served on loopback only."""
DEFAULT_DURATION = 3600
ONE_PER_REQUEST_AFTER = 20
"""Requests before the tab calls zombies "one per request": a batch reaper can hold the
first few children as zombies, and only a count well past its batch tells them apart."""


@dataclass(frozen=True, slots=True)
class WebOptions:
    port: int = DEFAULT_PORT

    @property
    def url(self) -> str:
        return f"http://{WEB_HOST}:{self.port}/"


def locust_args(options: WebOptions, folder: Path) -> list[str]:
    """Locust's flags for a run driven from its UI (instead of --headless and --run-time)."""
    return [
        "--web-host", WEB_HOST,
        "--web-port", str(options.port),
        "--reaperlab-live", str(folder.resolve() / LIVE_FILE),
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class TreeNow:
    """The server's children now, as the tab and the live view show them: from the event
    record (exact) where it runs, else from the latest sample (sampled)."""

    alive: int
    """Live children of the server itself."""
    zombies: int
    """Zombies anywhere in its tree (each holds a PID)."""
    deeper: int
    """Of those, held by its grandchildren or deeper."""
    peak: int
    """The most zombies at once so far (exact), or in one sample (sampled: a lower bound)."""
    exact: bool
    forks: int | None = None
    exits: int | None = None
    reaps: int | None = None

    @classmethod
    def of(cls, sample: Sample | None, counts: TreeCounts | None, peak: int) -> TreeNow | None:
        """From the record's counts where there are some, else from ``sample`` and the
        sampled ``peak`` (direct zombies, as the sampler's peak counts them)."""
        if counts is not None:
            return cls(
                alive=counts.live - counts.deeper_live,
                zombies=counts.zombies,
                deeper=counts.deeper_zombies,
                peak=counts.peak_zombies,
                exact=True,
                forks=counts.forks,
                exits=counts.exits,
                reaps=counts.reaps,
            )
        if sample is None:
            return None
        return cls(
            alive=sample.alive,
            zombies=sample.zombies + sample.descendant_zombies,
            deeper=sample.descendant_zombies,
            peak=peak,
            exact=False,
        )

    @property
    def source(self) -> str:
        return "kernel events (exact)" if self.exact else "sampler (/proc), sampled"


def live_verdict(now: TreeNow, requests: int | None, cap: int) -> str:
    """The verdict so far, in words that say what was seen and no more ("sampled" where
    it rests on samples). The settled judgement (after the load, with the server's
    counters and every child's life) is the report's."""
    sampled = "" if now.exact else " (sampled)"
    if requests is None or requests == 0:
        return "no requests yet: start a swarm"
    if now.zombies >= cap:
        return f"at the zombie cap of {cap}: load frozen"
    if now.zombies == 0 and now.peak == 0:
        return f"no zombie so far{sampled} after {requests:,} requests"
    if requests >= ONE_PER_REQUEST_AFTER and now.zombies >= 0.9 * requests:
        return (
            f"one zombie per request so far{sampled}: {now.zombies:,} after {requests:,} requests"
        )
    most = f"at most {now.peak:,}" if now.exact else f"at least {now.peak:,}"
    return f"{now.zombies:,} zombies now{sampled}, {most} at once so far; {requests:,} requests"


def live_rows(
    now: TreeNow | None,
    sample: Sample | None,
    record: ScenarioRecord,
    requests: int | None,
) -> list[dict[str, str]]:
    """The Zombies tab's rows: figure, value, and where the value comes from."""
    if now is None:
        return [{"figure": "sampler", "value": "starting", "source": "harness"}]
    cap = record.cap or 0
    enforcement = record.cap_enforcement or "?"
    server = record.server_counters
    fds = None if sample is None else sample.fds
    rows = [
        ("server PID", str(record.server_pid), "harness"),
        ("live children", f"{now.alive:,}", now.source),
        ("zombies", f"{now.zombies:,}", now.source),
        ("zombies deeper down", f"{now.deeper:,}", now.source),
        ("peak zombies", f"{now.peak:,}", now.source),
    ]
    if now.exact:
        rows.append(
            ("children forked / exited / reaped", f"{now.forks:,} / {now.exits:,} / {now.reaps:,}",
             now.source)
        )  # fmt: skip
    rows += [
        ("open fds", "?" if fds is None else f"{fds:,}", "sampler (/proc)"),
        ("requests completed", "?" if requests is None else f"{requests:,}", "Locust"),
        ("zombie cap", f"{cap:,} ({enforcement})", "harness"),
        (
            "server counters",
            json.dumps(server) if server else "printed by the server at shutdown",
            "server",
        ),
        ("verdict so far", live_verdict(now, requests, cap), "harness"),
    ]
    if sample is not None:
        rows.append(("sampled at", f"{sample.elapsed:.1f} s", "sampler"))
    return [{"figure": f, "value": v, "source": s} for f, v, s in rows]
