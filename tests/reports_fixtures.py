"""Synthetic run directories for the reports tests, written with the harness's real file formats.

The Locust headers are copied from files Locust 2 wrote (`--csv PREFIX --csv-full-history`),
so the reader is tested against what Locust produces without importing locust here.

Also a command: `python -m tests.reports_fixtures DEST` writes a realistic example run
(no-reaper climbing to 2000 zombies at 100 requests/s for 20 s, against reaper-loop,
reaper-single and fd-leak), then `python -m reports DEST` draws it.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from diagnostics import contract
from diagnostics.defaults import INTERVAL
from loadtest import defaults
from loadtest.scenarios import LEAK_CLIENT_FD, SCENARIOS, Described, Scenario


def header(line: str) -> list[str]:
    """A header as the CSV line its writer puts first, parsed the way a reader would."""
    return next(csv.reader([line]))


SAMPLE_HEADER = list(contract.SAMPLE_COLUMNS)
STATS_HEADER = header(
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
HISTORY_HEADER = header(
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)
FAILURES_HEADER = header("Method,Name,Error,Occurrences,First Seen,Last Seen")
EXCEPTIONS_HEADER = header("Count,Message,Traceback,Nodes")

RUN_STARTED = 1795731200.0
MACHINE = {
    "python": "3.11.2",
    "kernel": "6.1.0-test",
    "cpus": 4,
    "pid_max": 32768,
    "platform": "Linux-6.1.0-test-x86_64",
    "hostname": "testbox",
}


@dataclass(frozen=True)
class Spec:
    """One synthetic scenario: what the server did with the load it was given (by default
    the harness's default load)."""

    name: str
    strategy: str | None
    rps: float = defaults.RATE.default
    duration: float = defaults.DURATION.default
    interval: float = INTERVAL.default
    leak_share: float = 0.0  # share of children left as zombies (1.0 for no reaper)
    leak_client_fd: bool = False
    cap: int = defaults.ZOMBIE_CAP.default
    users: int = defaults.USERS.default
    seed: int = 1


def described(spec: Spec) -> Described:
    """What the harness records about the strategy, from the same registry it uses."""
    scenario = SCENARIOS.get(spec.name) or Scenario(spec.name, spec.strategy)
    flags = (LEAK_CLIENT_FD,) if spec.leak_client_fd else ()
    return replace(scenario, strategy=spec.strategy, server_flags=flags).described(
        defaults.WORK_MS.default
    )


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


Record = TypeVar("Record", contract.RunRecord, contract.ScenarioRecord)


def rewrite(path: Path, kind: type[Record], **changes: Any) -> None:
    """Change some fields of a run's run.json or scenario.json, through its record."""
    record = kind.from_json(json.loads(path.read_text(encoding="utf-8")))
    write_json(path, replace(record, **changes).to_json())


def write_csv(path: Path, header: Sequence[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_scenario(run_dir: Path, spec: Spec, started: float) -> float:
    """Write one scenario's files; return when it ended (the next one starts there)."""
    rng = np.random.default_rng(spec.seed)
    folder = run_dir / spec.name
    folder.mkdir(parents=True)
    lead, tail = 0.5, 1.0
    t = np.arange(0.0, lead + spec.duration + tail, spec.interval)
    forked = np.floor(spec.rps * np.clip(t - lead, 0, spec.duration))
    # One zombie per leaked child; a leaking server hits the cap and stops the load there.
    capped_at = None
    if spec.leak_share and forked[-1] * spec.leak_share > spec.cap:
        capped_at = float(t[np.argmax(forked * spec.leak_share >= spec.cap)])
        forked = np.minimum(forked, np.ceil(spec.cap / spec.leak_share))
    loading = (t >= lead) & (t <= lead + spec.duration) & (capped_at is None or t <= capped_at)
    alive = np.where(loading, rng.poisson(3, t.size), 0)
    zombies = np.floor(forked * spec.leak_share)
    if spec.leak_share < 1:
        # A reaper still lets a few zombies exist between SIGCHLD and waitpid.
        zombies += np.where(loading, rng.binomial(8, 0.2, t.size), 0)
    zombies[-4:] = np.floor(forked[-1] * spec.leak_share)
    fds = 5 + (forked if spec.leak_client_fd else rng.integers(0, 2, t.size))
    rss = 14 * 2**20 + forked * 40
    rows: list[list[Any]] = [
        [
            f"{started + x:.3f}",
            f"{x:.3f}",
            int(a + z),
            int(a),
            int(z),
            0,  # descendant_zombies: this server's children fork nothing
            int(f),
            int(r),
            f"{c:.1f}",
            1,
            f"{s:.3f}",
            0,  # listener_holders: this server's children close the listening socket
        ]
        for x, a, z, f, r, c, s in zip(
            t,
            alive,
            zombies,
            fds,
            rss,
            rng.uniform(0, 30, t.size),
            0.2 + zombies / 2000,
            strict=True,
        )
    ]
    write_csv(folder / contract.SAMPLES, SAMPLE_HEADER, rows)

    total = int(forked[-1])
    final = int(zombies[-1])
    load_end = capped_at if capped_at is not None else lead + spec.duration
    seconds = np.arange(np.ceil(started + lead), started + load_end + 1)
    sent = np.minimum(spec.rps * np.clip(seconds - started - lead, 0, None), total)
    p50 = 2 + rng.uniform(0, 1, seconds.size)
    p95 = 6 + rng.uniform(0, 4, seconds.size)
    history = [
        [
            int(ts),
            spec.users,
            "",
            "Aggregated",
            f"{spec.rps if n else 0:.6f}",
            "0.000000",
            *([f"{a:.0f}"] * 5),
            *([f"{b:.0f}"] * 5),
            f"{b * 2:.0f}",
            int(c),
            0,
            3,
            3.5,
            1.0,
            40.0,
            120.0,
        ]
        for ts, a, b, c, n in zip(seconds, p50, p95, sent, range(seconds.size), strict=True)
    ]
    write_csv(folder / "locust_stats_history.csv", HISTORY_HEADER, history)
    rps = total / (load_end - lead)
    figures = [total, 0, 3, 3.6, 1.1, 26.4, 120.0, rps, 0.0, 3, 3, 4, 4, 5, 8, 12, 15, 26, 26, 26]
    stats = [["GET", "/", *figures], ["", "Aggregated", *figures]]
    write_csv(folder / "locust_stats.csv", STATS_HEADER, stats)
    write_csv(folder / "locust_failures.csv", FAILURES_HEADER, [])
    write_csv(folder / "locust_exceptions.csv", EXCEPTIONS_HEADER, [])
    (folder / contract.LOCUST_LOG).write_text("locust: all users spawned\n", encoding="utf-8")
    (folder / contract.SERVER_LOG).write_text("serving on 127.0.0.1:40223\n", encoding="utf-8")
    counters = {
        "accepted": total,
        "forked": total,
        "reaped": total - final,
        "fork_failures": 0,
        "rejected": 0,
    }
    write_json(folder / contract.SERVER, counters)
    ended = started + float(t[-1])
    last = rows[-1]
    write_json(
        folder / contract.SCENARIO,
        contract.ScenarioRecord(
            name=spec.name,
            strategy=spec.strategy,
            **described(spec),
            server_cmd=None,
            asked={"users": spec.users, "rate": spec.rps, "duration": spec.duration, "work_ms": 0},
            started=started,
            load_started=started + lead,
            load_ended=started + load_end,
            ended=ended,
            status=contract.Status.CAPPED if capped_at is not None else contract.Status.OK,
            capped=capped_at is not None,
            cap=spec.cap,
            capped_at=capped_at,
            server_pid=4242,
            server_counters=counters,
            load={"requests": total, "failures": 0, "rps": rps, "failure_reasons": []},
            final_sample={
                name: float(cell) if name in contract.FLOAT_COLUMNS else int(cell)
                for name, cell in zip(SAMPLE_HEADER, last, strict=True)
            },
        ).to_json(),
    )
    return ended


def write_run(run_dir: Path, specs: list[Spec], run_id: str = "20261126-221500") -> Path:
    """A complete loadtest run directory with one folder per spec."""
    run_dir.mkdir(parents=True, exist_ok=True)
    started = RUN_STARTED
    for spec in specs:
        started = write_scenario(run_dir, spec, started) + 1
    first = specs[0] if specs else Spec("none", None)
    write_json(
        run_dir / contract.RUN,
        contract.RunRecord(
            id=run_id,
            kind="loadtest",
            started=RUN_STARTED,
            ended=started,
            exit_status=contract.Status.OK,
            exit_code=0,
            parameters={
                "users": first.users,
                "rate": first.rps,
                "duration": first.duration,
                "work_ms": 0,
                "interval": first.interval,
                "processes": 1,
                "zombie_cap": first.cap,
                "server_cmd": None,
            },
            scenarios=[spec.name for spec in specs],
            machine=MACHINE,
        ).to_json(),
    )
    return run_dir


def write_watch_run(run_dir: Path, zombies: np.ndarray, interval: float = 0.5) -> Path:
    """A `diagnostics watch` run: one "watch" scenario, samples only, no Locust, no server.json."""
    folder = run_dir / "watch"
    folder.mkdir(parents=True)
    t = np.arange(zombies.size) * interval
    rows = [
        [
            f"{RUN_STARTED + x:.3f}",
            f"{x:.3f}",
            int(z) + 1,
            1,
            int(z),
            int(z),
            9,
            30 * 2**20,
            "",
            2,
            "0.150",
            "",  # listener_holders: the watched process listens on nothing
        ]
        for x, z in zip(t, zombies, strict=True)
    ]
    write_csv(folder / contract.SAMPLES, SAMPLE_HEADER, rows)
    write_json(
        folder / contract.SCENARIO,
        contract.ScenarioRecord(
            name="watch", started=RUN_STARTED, status=contract.Status.OK
        ).to_json(),
    )
    write_json(
        run_dir / contract.RUN,
        contract.RunRecord(
            id="20261126-230000",
            kind="watch",
            started=RUN_STARTED,
            ended=RUN_STARTED + float(t[-1]),
            exit_status=contract.Status.OK,
            exit_code=0,
            parameters={
                "pid": 777,
                "cmdline": ["/usr/bin/helperd", "--fork"],
                "duration": float(t[-1]),
                "interval": interval,
            },
            scenarios=["watch"],
            machine=MACHINE,
        ).to_json(),
    )
    return run_dir


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; fails the test if the file is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR", f"{path.name} has no IHDR chunk first"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


EXAMPLE = [
    Spec("no-reaper", "none", leak_share=1.0, seed=1),
    Spec("reaper-loop", "loop", seed=2),
    Spec("reaper-single", "single", leak_share=0.43, seed=3),
    Spec("fd-leak", "loop", leak_client_fd=True, seed=4),
]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.reports_fixtures DEST", file=sys.stderr)
        return 2
    print(write_run(Path(argv[0]), EXAMPLE))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
