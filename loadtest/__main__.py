"""``python -m loadtest``: the forking server under Locust load while the sampler watches."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from diagnostics import contract
from diagnostics.commandline import OneLineParser, UsageError
from loadtest import distributed, scenarios, web
from loadtest.cap import MAX_CAP, MIN_CAP
from loadtest.expectations import Expectations
from loadtest.experiment import Settings
from loadtest.harness import DEFAULT_RUNS, Harness, RunPlan
from loadtest.live import open_view, print_summary
from loadtest.load import LOCUSTFILE, RAW_LOCUSTFILE, LoadShape
from loadtest.processes import STOP_GRACE
from loadtest.target import LOOPBACK, validate_server_cmd
from loadtest.trace import ENV as DEBUG_ENV
from loadtest.trace import wanted as debug_wanted

EXIT_USAGE = 2
MAX_DURATION = 3600
"""Every load is bounded in time: an hour is the most one scenario may ask for."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m loadtest",
        description=(
            "Run the fork-per-connection server under Locust load while a sampler counts its"
            " children and zombies; write a run directory with plots and a report."
        ),
        epilog="scenarios: " + ", ".join(scenarios.EVERY_SCENARIO) + ", external (--server-cmd)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--no-reaper", action="store_true", help="only the no-reaper scenario: reproduce the bug"
    )
    which.add_argument(
        "--reaper", choices=scenarios.STRATEGIES, help="only the scenario of this strategy"
    )
    which.add_argument("--scenarios", help="comma-separated scenario names")
    which.add_argument("--all", action="store_true", help="every strategy plus the fd-leak fault")
    parser.add_argument("--users", type=int, default=20, help="concurrent Locust users (20)")
    parser.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="total requests/s over all users; 0 = as fast as they can (100)",
    )
    parser.add_argument(
        "--duration",
        type=int,
        help="seconds of load per scenario (20; with --web, the longest the UI stays up: 3600)",
    )
    parser.add_argument("--work-ms", type=int, default=0, help="ms each server child works (0)")
    parser.add_argument("--interval", type=float, default=0.05, help="sampling interval, s (0.05)")
    parser.add_argument(
        "--processes", type=int, default=1, help="Locust worker processes on this machine (1)"
    )
    parser.add_argument(
        "--zombie-cap",
        type=int,
        default=5000,
        help=f"stop the load at this many zombies ({MIN_CAP:,} to {MAX_CAP:,}; 5000; lowered"
        " when PIDs are short)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_RUNS,
        help="runs folder (reports/runs); a run goes to OUT/<id>/",
    )
    parser.add_argument(
        "--server-cmd",
        action="append",
        default=[],
        help='a server of your own: "[NAME=]CMD ... {port}" (binding 127.0.0.1:{port});'
        " repeat it to compare servers side by side",
    )
    parser.add_argument(
        "--ready-log",
        help="the server is ready when a line of its output matches this regex"
        " (default: when a socket listens on its port)",
    )
    parser.add_argument(
        "--protocol",
        choices=("http", "raw"),
        default="http",
        help="http (default), or raw: send GET PATH HTTP/1.0, read until the server closes;"
        " a success is any answer (for servers that do not speak valid HTTP)",
    )
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        help="path to request (repeatable, chosen at random; default: / and /<name>)",
    )
    parser.add_argument(
        "--expect-status", type=int, default=200, help="the status a success has (200)"
    )
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--expect-body", help="a success's body contains this text")
    body.add_argument(
        "--no-body-check",
        action="store_true",
        help="do not check the body of the default mix against our server's greeting",
    )
    parser.add_argument(
        "--max-failures",
        type=float,
        default=1.0,
        help="percent of failed requests above which the scenario failed (1)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds the final sample may wait for the server to settle after the load (5)",
    )
    parser.add_argument(
        "--server-timeout",
        type=float,
        default=10.0,
        help="seconds the server may take to open its port (10)",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=STOP_GRACE,
        help=f"seconds the server has to exit after SIGTERM before it is killed ({STOP_GRACE:g})",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"trace what the harness does into harness.log in the run directory"
        f" (also {DEBUG_ENV}=1)",
    )
    parser.add_argument(
        "--locustfile",
        type=Path,
        default=LOCUSTFILE,
        help="your own Locust user classes instead of the built-in one",
    )
    parser.add_argument(
        "--plain", action="store_true", help="plain progress lines even on a terminal"
    )
    front = parser.add_mutually_exclusive_group()
    front.add_argument(
        "--web",
        action="store_true",
        help="drive the load from Locust's web UI (on 127.0.0.1), with a Zombies tab;"
        " one scenario (no-reaper unless chosen); Ctrl-C ends the run",
    )
    front.add_argument(
        "--expect-workers",
        type=int,
        help="run Locust as a master that waits for N workers started on other machines",
    )
    parser.add_argument(
        "--web-port", type=int, default=web.DEFAULT_PORT, help="port of the web UI (8089)"
    )
    parser.add_argument(
        "--master-bind", help="address the master listens on for workers (with --expect-workers)"
    )
    parser.add_argument(
        "--master-port",
        type=int,
        default=distributed.DEFAULT_MASTER_PORT,
        help="port the master listens on for workers (5557)",
    )
    parser.add_argument(
        "--worker-timeout",
        type=float,
        default=60.0,
        help="seconds the master waits for all workers before the run fails (60)",
    )
    parser.add_argument(
        "--server-host",
        default=LOOPBACK,
        help="address our server binds, so that remote workers reach it (127.0.0.1)",
    )
    return parser  # fmt: skip


def plan_from(args: argparse.Namespace) -> RunPlan:
    """Check every flag and build the plan; UsageError with a one-line reason otherwise."""
    if args.duration is None:
        args.duration = web.DEFAULT_DURATION if args.web else 20
    workers = args.expect_workers
    checks = [
        (1 <= args.web_port <= 65535, "--web-port must be 1 to 65535"),
        (workers is None or 1 <= workers <= 256, "--expect-workers must be 1 to 256"),
        (
            (workers is None) == (args.master_bind is None),
            "--expect-workers and --master-bind go together",
        ),
        (1 <= args.master_port <= 65535, "--master-port must be 1 to 65535"),
        (0 < args.worker_timeout <= 3600, "--worker-timeout must be up to 3600 seconds"),
        (
            args.server_host == LOOPBACK or workers is not None,
            "--server-host is for --expect-workers (remote workers must reach the server)",
        ),
        (
            args.server_host == LOOPBACK or not args.server_cmd,
            "--server-host is where our server binds; a --server-cmd binds where it says",
        ),
        (
            workers is None or args.processes == 1,
            "--processes and --expect-workers exclude each other: start more workers instead",
        ),
        (args.users >= 1, "--users must be at least 1"),
        (args.rate >= 0, "--rate must not be negative"),
        (1 <= args.duration <= MAX_DURATION, f"--duration must be 1 to {MAX_DURATION} seconds"),
        (args.work_ms >= 0, "--work-ms must not be negative"),
        (0.005 <= args.interval <= 10, "--interval must be 0.005 to 10 seconds"),
        (1 <= args.processes <= 64, "--processes must be 1 to 64"),
        (
            MIN_CAP <= args.zombie_cap <= MAX_CAP,
            f"--zombie-cap must be {MIN_CAP} to {MAX_CAP}: the cgroup's limit must also leave"
            " room for the children in flight",
        ),
        (0 < args.stop_grace <= 300, "--stop-grace must be more than 0, up to 300 seconds"),
        (args.server_timeout > 0, "--server-timeout must be positive"),
        (args.locustfile.is_file(), f"--locustfile {args.locustfile} is not a file"),
        (
            args.protocol == "http" or args.locustfile == LOCUSTFILE,
            "--protocol raw uses its own client; it cannot be combined with --locustfile",
        ),
        (all(path.startswith("/") for path in args.path), "--path must start with /"),
        (100 <= args.expect_status <= 599, "--expect-status must be 100 to 599"),
        (0 <= args.max_failures <= 100, "--max-failures must be 0 to 100 (percent)"),
        (0 <= args.settle <= 300, "--settle must be 0 to 300 seconds"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    try:
        if args.ready_log is not None:
            re.compile(args.ready_log)
    except re.error as error:
        raise UsageError(f"--ready-log is not a regular expression: {error}") from None
    try:
        strategy = "none" if args.no_reaper else args.reaper
        names = (
            [n.strip() for n in args.scenarios.split(",") if n.strip()] if args.scenarios else None
        )
        if args.web and not (names or strategy or args.all or args.server_cmd):
            strategy = "none"
        chosen = scenarios.select(names, strategy, args.all, args.server_cmd)
        if args.web and len(chosen) != 1:
            raise ValueError("--web runs one scenario: choose it (--no-reaper, --reaper S, ...)")
        for scenario in chosen:
            if scenario.server_cmd is not None:
                validate_server_cmd(scenario.server_cmd)
    except ValueError as error:
        raise UsageError(str(error)) from None
    settings = Settings(
        shape=LoadShape(args.users, args.rate, args.duration, args.processes),
        work_ms=args.work_ms,
        interval=args.interval,
        zombie_cap=args.zombie_cap,
        server_timeout=args.server_timeout,
        locustfile=RAW_LOCUSTFILE if args.protocol == "raw" else args.locustfile,
        expectations=Expectations(
            paths=tuple(args.path),
            status=args.expect_status,
            body=args.expect_body,
            body_check=not args.no_body_check,
        ),
        ready_log=args.ready_log,
        settle=args.settle,
        max_failures=args.max_failures,
        web=web.WebOptions(args.web_port) if args.web else None,
        workers=None
        if workers is None
        else distributed.WorkerOptions(
            workers, args.master_bind, args.master_port, args.worker_timeout
        ),
        server_host=args.server_host,
        stop_grace=args.stop_grace,
    )
    return RunPlan(chosen, settings, args.out, debug_wanted(args.debug))


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        harness = Harness(plan_from(args), open_view(False if args.plain else None))
    except UsageError as error:
        print(f"loadtest: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"loadtest: error: cannot create the run directory: {error}", file=sys.stderr)
        return EXIT_USAGE
    view = harness.view
    try:
        view.message(f"run directory: {harness.run_dir}")
        code = harness.run()
    finally:
        view.close()
    code, markdown, problem = harness.finish(code)
    if markdown:
        summary_json = harness.run_dir / contract.SUMMARY_JSON
        if sys.stdout.isatty() and not args.plain and summary_json.is_file():
            print_summary(json.loads(summary_json.read_text()))
        else:
            print(markdown)
        for name in contract.RUN_REPORT:
            print(f"  {harness.run_dir / name}")
    for notice in harness.notices:
        print(f"loadtest: warning: {notice}", file=sys.stderr)
    status = harness.record.exit_status
    if code == 0:
        print(harness.run_dir)
    elif problem is None:
        print(f"loadtest: {status} ({harness.run_dir})", file=sys.stderr)
    elif status == f"error: {problem}":  # the missing report is what went wrong
        print(f"loadtest: {status}", file=sys.stderr)
    else:  # interrupted, or failed, and the report is missing too: one line says both
        print(f"loadtest: {status}; {problem}", file=sys.stderr)
    harness.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
