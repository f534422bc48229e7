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


def live_verdict(sample: Sample, peak: int, requests: int | None, cap: int) -> str:
    """The verdict so far, in words that say what was seen and no more.

    The settled judgement (after the load, with the server's counters) is the report's.
    """
    if requests is None or requests == 0:
        return "no requests yet: start a swarm"
    if sample.zombies >= cap:
        return f"at the zombie cap of {cap}: load frozen"
    if sample.zombies == 0 and peak == 0:
        return f"no zombies so far after {requests:,} requests"
    if requests >= ONE_PER_REQUEST_AFTER and sample.zombies >= 0.9 * requests:
        return f"one zombie per request so far: {sample.zombies:,} after {requests:,} requests"
    return f"{sample.zombies:,} zombies now, at most {peak:,} so far; {requests:,} requests"


def live_rows(
    sample: Sample | None,
    record: ScenarioRecord,
    peak: int,
    requests: int | None,
) -> list[dict[str, str]]:
    """The Zombies tab's rows: figure, value, and where the value comes from; ``peak`` is
    the most zombies seen so far (the record has it only once the scenario ends)."""
    if sample is None:
        return [{"figure": "sampler", "value": "starting", "source": "harness"}]
    cap = record.cap or 0
    enforcement = record.cap_enforcement or "?"
    server = record.server_counters
    rows = [
        ("server PID", str(record.server_pid), "harness"),
        ("live children", f"{sample.alive:,}", "sampler (/proc)"),
        ("zombies", f"{sample.zombies:,}", "sampler (/proc)"),
        ("zombies deeper down", f"{sample.descendant_zombies:,}", "sampler (/proc)"),
        ("peak zombies", f"{peak:,}", "sampler (/proc)"),
        ("open fds", "?" if sample.fds is None else f"{sample.fds:,}", "sampler (/proc)"),
        ("requests completed", "?" if requests is None else f"{requests:,}", "Locust"),
        ("zombie cap", f"{cap:,} ({enforcement})", "harness"),
        (
            "server counters",
            json.dumps(server) if server else "printed by the server at shutdown",
            "server",
        ),
        (
            "verdict so far",
            live_verdict(sample, peak, requests, cap),
            "harness",
        ),
        ("sampled at", f"{sample.elapsed:.1f} s", "sampler"),
    ]
    return [{"figure": f, "value": v, "source": s} for f, v, s in rows]
