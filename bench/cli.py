"""The command line of ``python -m bench``: flags in, checked BenchSettings out."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.sampler_cost import check_levels
from bench.sections import SECTIONS
from bench.settings import BenchSettings
from diagnostics.commandline import OneLineParser, UsageError

DEFAULT_OUT = Path("reports/bench")
MAX_SECONDS = 300
"""Every load is bounded in time: five minutes is the most one measurement may ask for."""


@dataclass(frozen=True, slots=True)
class Preset:
    """What --rounds, --seconds and --zombies default to, and the other sections' sizes."""

    rounds: int
    seconds: int
    zombies: tuple[int, ...]
    sampler_rounds: int
    exporter_processes: int


FULL = Preset(
    rounds=5, seconds=3, zombies=(0, 500, 2000), sampler_rounds=20, exporter_processes=8000
)
QUICK = Preset(rounds=1, seconds=2, zombies=(0, 50), sampler_rounds=3, exporter_processes=300)
"""A tiny setting that runs every section end to end (the smoke test uses it). Two seconds,
not one: Locust's run time starts as it spawns its users, and on a busy machine one second
could end before any request completed."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m bench",
        description=(
            "Side-by-side speed table: our server vs socketserver.ForkingTCPServer and a"
            " minimal forking server, the sampler's cost, its observer effect, the"
            " load generator's headroom and the exporter's scrape of the whole host."
            " Writes OUT/<YYYYmmdd-HHMMSS>.json."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny setting: {QUICK.rounds} round of {QUICK.seconds} s",
    )
    parser.add_argument(
        "--rounds", type=int, help=f"alternating rounds per section ({FULL.rounds})"
    )
    parser.add_argument(
        "--seconds", type=int, help=f"seconds of load per measurement ({FULL.seconds})"
    )
    parser.add_argument(
        "--connections", type=int, default=20, help="concurrent connections / users (%(default)s)"
    )
    parser.add_argument(
        "--zombies",
        type=int,
        nargs="+",
        help=f"zombie levels for the sampler ({' '.join(map(str, FULL.zombies))})",
    )
    parser.add_argument(
        "--load-generator",
        choices=("auto", "wrk", "locust"),
        default="auto",
        help="auto: wrk when it is on PATH, else Locust",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated subset of %(default)s (all)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON file")
    parser.add_argument(
        "--json-only", action="store_true", help="print the JSON document instead of the table"
    )
    return parser


def parse(argv: Sequence[str] | None) -> BenchSettings:
    """The settings from the command line; UsageError with a one-line reason otherwise."""
    args = build_parser().parse_args(argv)
    base = QUICK if args.quick else FULL
    rounds: int = base.rounds if args.rounds is None else args.rounds
    seconds: int = base.seconds if args.seconds is None else args.seconds
    zombies = base.zombies if args.zombies is None else tuple(args.zombies)
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    checks = [
        (1 <= rounds <= 100, "--rounds must be 1 to 100"),
        (1 <= seconds <= MAX_SECONDS, f"--seconds must be 1 to {MAX_SECONDS}"),
        (1 <= args.connections <= 1000, "--connections must be 1 to 1000"),
        (bool(sections), "--sections is empty"),
        (set(sections) <= set(SECTIONS), f"--sections must be among {', '.join(SECTIONS)}"),
        (
            args.load_generator != "wrk" or shutil.which("wrk") is not None,
            "--load-generator wrk: wrk is not on PATH (Debian: apt-get install wrk)",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    try:
        check_levels(zombies)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return BenchSettings(
        rounds=rounds,
        seconds=seconds,
        connections=args.connections,
        zombies=zombies,
        sampler_rounds=base.sampler_rounds,
        exporter_processes=base.exporter_processes,
        generator=args.load_generator,
        sections=tuple(s for s in SECTIONS if s in sections),
        out=args.out,
        json_only=args.json_only,
        quick=args.quick,
    )
