"""Command line of the diagnostics package (``python -m diagnostics``).

Every failure a user can cause (bad arguments, a PID that does not exist or cannot
be read, an output directory in use, an address already taken) ends in one line on
stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from diagnostics import exporter, whoreaps
from diagnostics.commandline import OneLineParser, UsageError, sigterm_as_ctrl_c
from diagnostics.contract import Status
from diagnostics.defaults import INTERVAL
from diagnostics.doctor import examine, examine_all, render
from diagnostics.errors import DiagnosticsError
from diagnostics.runs import DEFAULT_RUNS
from diagnostics.watch import (
    WatchResult,
    describe_events,
    draw_report,
    record_failed_report,
    watch,
)

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _number(kind: type[int] | type[float], minimum: float) -> Callable[[str], float]:
    """An argparse ``type`` that parses ``kind`` and rejects values below ``minimum``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value >= minimum:  # also rejects NaN
            raise argparse.ArgumentTypeError(f"must be >= {minimum:g}, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m diagnostics", description="Observe processes and zombies."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    doctor = sub.add_parser("doctor", help="diagnose a parent's zombies (or every parent's)")
    doctor.add_argument("pid", nargs="?", type=_number(int, 1), help="the parent to examine")
    doctor.add_argument("--all", action="store_true", help="every parent that holds zombies")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument(
        "--fail-on-zombies",
        type=_number(int, 1),
        metavar="N",
        help="exit 1 when any parent holds N or more zombies",
    )
    doctor.add_argument(
        "--watch",
        type=_number(float, 0),
        default=2.0,
        metavar="SECONDS",
        help="how long to watch the growth (default %(default)g; 0 for an instant answer)",
    )

    watch_cmd = sub.add_parser("watch", help="sample a process into a run directory")
    watch_cmd.add_argument("pid", type=_number(int, 1))
    watch_cmd.add_argument("--duration", type=_number(float, 0.001), required=True)
    watch_cmd.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_RUNS,
        help="runs folder (%(default)s); the watch goes to OUT/<id>/, as a load test's does",
    )
    watch_cmd.add_argument(
        "--interval",
        type=float,
        default=INTERVAL.default,
        help="mean seconds between samples (%(default)g)",
    )

    exporter_cmd = sub.add_parser(
        "exporter",
        help="serve Prometheus metrics: zombies per parent, leak rate, time to the PID limit",
    )
    exporter_cmd.add_argument(
        "--listen",
        type=_listen,
        default=exporter.DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="where to serve /metrics (%(default)s; another address only when given here)",
    )
    exporter_cmd.add_argument(
        "--pid", type=_number(int, 1), help="one process tree (default: the whole host)"
    )
    exporter_cmd.add_argument(
        "--top",
        type=_number(int, 1),
        default=exporter.DEFAULT_TOP,
        metavar="N",
        help="parents given series of their own, most zombies first (%(default)s)",
    )
    exporter_cmd.add_argument(
        "--window",
        type=_number(float, 0.001),
        default=exporter.DEFAULT_WINDOW_S,
        metavar="SECONDS",
        help="span of scrapes the growth rates are taken over; longer than the scrape"
        " interval (%(default)g)",
    )
    return parser


def _listen(text: str) -> exporter.Address:
    try:
        return exporter.parse_listen(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _doctor(args: argparse.Namespace) -> int:
    if (args.pid is None) == (not args.all):
        raise UsageError("give either a PID or --all")
    if args.all:
        parents = examine_all(args.watch)
        groups = whoreaps.groups(parents, whoreaps.outside_namespace())
        if args.json:
            print(json.dumps({"parents": parents, "groups": groups}, indent=2))
        else:
            shown = [whoreaps.render_groups(groups)] if groups else []
            print("\n\n".join(shown + list(map(render, parents))) or "no zombies on this machine")
    else:
        parents = [examine(args.pid, args.watch)]
        print(json.dumps(parents[0], indent=2) if args.json else render(parents[0]))
    threshold = args.fail_on_zombies
    return 1 if threshold is not None and any(p["zombies"] >= threshold for p in parents) else 0


def _watch(args: argparse.Namespace) -> int:
    problem = INTERVAL.problem("--interval", args.interval)
    if problem is not None:
        raise UsageError(problem)
    result = watch(args.pid, args.duration, args.out, args.interval)
    try:
        return _end_watch(args.pid, result)
    finally:
        if result.reserve is not None:
            result.reserve.release()


def _end_watch(pid: int, result: WatchResult) -> int:
    """Its report, its figures and its exit status, which run.json then says too."""
    if result.message:
        print(f"diagnostics watch: {result.message}", file=sys.stderr)
    report = draw_report(result.run_dir)
    if report.verdict is not None:
        print(f"PID {pid}: {report.verdict}")
    if result.events is not None:
        print(describe_events(result.events))
    code = {Status.INTERRUPTED: EXIT_INTERRUPTED, Status.ERROR: 1}.get(result.status, 0)
    if report.index is not None:
        print(f"report: {report.index}")
    else:
        problem = f"{report.problem}; the data is in {result.run_dir}"
        if code == 0:  # a watch without its report did not do what was asked
            code = 1
            unsaid = record_failed_report(result.run_dir, problem, result.reserve)
            problem += "" if unsaid is None else f" (run.json does not say so: {unsaid})"
        print(f"diagnostics watch: {problem}", file=sys.stderr)
    print(f"run directory: {result.run_dir}")
    return code


def _exporter(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM (exit 0: that is how an exporter is stopped) or,
    with --pid, until the target exits (exit 1: there is nothing left to watch)."""
    collector = exporter.ZombieCollector(args.pid, args.top, args.window)
    sigterm_as_ctrl_c()
    try:
        exporter.serve(collector, args.listen)
    except KeyboardInterrupt:
        return 0
    except exporter.TargetExited as gone:
        print(f"diagnostics exporter: {gone}", file=sys.stderr)
        return 1
    finally:
        collector.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "watch":
            sigterm_as_ctrl_c()
            return _watch(args)
        if args.command == "exporter":
            return _exporter(args)
        return _doctor(args)
    except (UsageError, DiagnosticsError, OSError) as exc:
        print(f"diagnostics: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("diagnostics: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
