"""``python -m loadtest``: the forking server under Locust load while the sampler watches."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from diagnostics import contract
from diagnostics.commandline import OneLineParser, UsageError
from diagnostics.defaults import INTERVAL, Bounded
from diagnostics.runs import DEFAULT_RUNS
from loadtest import defaults, distributed, pidns, scenarios, web
from loadtest.expectations import Expectations
from loadtest.experiment import Settings
from loadtest.harness import Harness, RunPlan
from loadtest.live import open_view, print_summary
from loadtest.load import LOCUSTFILE, RAW_LOCUSTFILE, LoadShape
from loadtest.target import LOOPBACK, validate_server_cmd
from loadtest.trace import ENV as DEBUG_ENV
from loadtest.trace import wanted as debug_wanted
from loadtest.tree_events import EventSources

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The flags in groups, as Locust's own --help has them. Each default comes from
    loadtest/defaults.py (or the module that owns it); the help says it with %(default)s."""
    parser = OneLineParser(
        prog="python -m loadtest",
        description=(
            "Run the fork-per-connection server under Locust load while a sampler counts its"
            " children and zombies; write a run directory with plots and a report."
        ),
        epilog="scenarios: " + ", ".join(scenarios.KNOWN) + ", external (--server-cmd)",
    )
    chosen = parser.add_argument_group("scenarios")
    which = chosen.add_mutually_exclusive_group()
    which.add_argument(
        "--no-reaper", action="store_true", help="only the no-reaper scenario: reproduce the bug"
    )
    which.add_argument(
        "--reaper", choices=scenarios.STRATEGIES, help="only the scenario of this strategy"
    )
    which.add_argument("--scenarios", help="comma-separated scenario names")
    which.add_argument(
        "--all",
        action="store_true",
        help="every strategy plus the faults (" + ", ".join(scenarios.FAULTS) + ")",
    )
    which.add_argument(
        "--containers",
        action="store_true",
        help="the server as PID 1 of a PID namespace, as in a container (root): "
        + ", ".join(scenarios.CONTAINERS),
    )
    container = parser.add_argument_group("containers (PID 1 of a PID namespace; root)")
    container.add_argument(
        "--pid1",
        action="store_true",
        help="run each server (ours or --server-cmd) as PID 1 of a new PID namespace",
    )
    container.add_argument(
        "--init",
        choices=pidns.INITS,
        help="with --pid1: the init in front of the server, as docker run --init (none)",
    )

    load = parser.add_argument_group("load")
    load.add_argument(
        "--users",
        type=int,
        default=defaults.USERS.default,
        help="concurrent Locust users (%(default)s)",
    )
    load.add_argument(
        "--rate",
        type=float,
        default=defaults.RATE.default,
        help="total requests/s over all users; 0 = as fast as they can (%(default)g)",
    )
    load.add_argument(
        "--duration",
        type=int,
        help=f"seconds of load per scenario ({defaults.DURATION.default}; with --web, the"
        f" longest the UI stays up: {web.DEFAULT_DURATION})",
    )
    load.add_argument(
        "--work-ms",
        type=int,
        default=defaults.WORK_MS.default,
        help="ms each server child works (%(default)s)",
    )
    load.add_argument(
        "--processes",
        type=int,
        default=defaults.PROCESSES.default,
        help="Locust worker processes on this machine (%(default)s)",
    )
    load.add_argument(
        "--locustfile",
        type=Path,
        default=LOCUSTFILE,
        help="your own Locust user classes instead of the built-in one",
    )
    load.add_argument(
        "--path",
        action="append",
        default=[],
        help="path to request (repeatable, chosen at random; default: / and /<name>)",
    )
    load.add_argument(
        "--expect-status",
        type=int,
        default=defaults.EXPECT_STATUS.default,
        help="the status a success has (%(default)s)",
    )
    body = load.add_mutually_exclusive_group()
    body.add_argument("--expect-body", help="a success's body contains this text")
    body.add_argument(
        "--no-body-check",
        action="store_true",
        help="do not check the body of the default mix against our server's greeting",
    )
    load.add_argument(
        "--max-failures",
        type=float,
        default=defaults.MAX_FAILURES.default,
        help="percent of failed requests above which the scenario failed (%(default)g)",
    )

    measure = parser.add_argument_group("sampling and the zombie cap")
    measure.add_argument(
        "--interval",
        type=float,
        default=INTERVAL.default,
        help="mean seconds between samples (%(default)g)",
    )
    measure.add_argument(
        "--zombie-cap",
        type=int,
        default=defaults.ZOMBIE_CAP.default,
        help=f"stop the load at this many zombies ({defaults.ZOMBIE_CAP.low} to"
        f" {defaults.ZOMBIE_CAP.high:,}; %(default)s; lowered when PIDs are short)",
    )
    measure.add_argument(
        "--events",
        choices=[sources.value for sources in EventSources],
        default=EventSources.ALL.value,
        help="kernel sources of the exact record of every fork, exit and reap (events.csv):"
        " %(default)s the machine has; no-reap-probe, no-connector or no-pidfds, to see"
        " what a machine without one records; off: samples alone",
    )
    measure.add_argument(
        "--settle",
        type=float,
        default=defaults.SETTLE.default,
        help="seconds the final sample may wait for the server to settle after the load"
        " (%(default)g)",
    )

    own = parser.add_argument_group("your own server")
    own.add_argument(
        "--server-cmd",
        action="append",
        default=[],
        help='a server of your own: "[NAME=]CMD ... {port}" (binding 127.0.0.1:{port});'
        " repeat it to compare servers side by side",
    )
    own.add_argument(
        "--ready-log",
        help="the server is ready when a line of its output matches this regex"
        " (default: when a socket listens on its port)",
    )
    own.add_argument(
        "--server-timeout",
        type=float,
        default=defaults.SERVER_TIMEOUT.default,
        help="seconds the server may take to open its port (%(default)g)",
    )
    own.add_argument(
        "--stop-grace",
        type=float,
        default=defaults.STOP_GRACE.default,
        help="seconds the server has to exit after SIGTERM before it is killed (%(default)g)",
    )
    own.add_argument(
        "--protocol",
        choices=("http", "raw"),
        default="http",
        help="%(default)s (the default), or raw: send GET PATH HTTP/1.0, read until the server"
        " closes; a success is any answer (for servers that do not speak valid HTTP)",
    )

    ui = parser.add_argument_group("web UI")
    ui.add_argument(
        "--web",
        action="store_true",
        help="drive the load from Locust's web UI (on 127.0.0.1), with a Zombies tab;"
        " one scenario (no-reaper unless chosen); Ctrl-C ends the run",
    )
    ui.add_argument(
        "--web-port",
        type=int,
        default=web.DEFAULT_PORT,
        help="port of the web UI (%(default)s)",
    )

    spread = parser.add_argument_group("distributed")
    spread.add_argument(
        "--expect-workers",
        type=int,
        help="run Locust as a master that waits for N workers started on other machines",
    )
    spread.add_argument(
        "--master-bind", help="address the master listens on for workers (with --expect-workers)"
    )
    spread.add_argument(
        "--master-port",
        type=int,
        default=distributed.DEFAULT_MASTER_PORT,
        help="port the master listens on for workers (%(default)s)",
    )
    spread.add_argument(
        "--worker-timeout",
        type=float,
        default=defaults.WORKER_TIMEOUT.default,
        help="seconds the master waits for all workers before the run fails (%(default)g)",
    )
    spread.add_argument(
        "--server-host",
        default=LOOPBACK,
        help="address our server binds, so that remote workers reach it (%(default)s)",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_RUNS,
        help="runs folder (%(default)s); a run goes to OUT/<id>/",
    )
    output.add_argument(
        "--plain", action="store_true", help="plain progress lines even on a terminal"
    )
    output.add_argument(
        "--debug",
        action="store_true",
        help=f"trace what the harness does into harness.log in the run directory"
        f" (also {DEBUG_ENV}=1)",
    )
    return parser  # fmt: skip


def plan_from(args: argparse.Namespace) -> RunPlan:
    """Check every flag and build the plan; UsageError with a one-line reason otherwise."""
    if args.duration is None:
        args.duration = web.DEFAULT_DURATION if args.web else defaults.DURATION.default
    workers = args.expect_workers
    bounded: list[tuple[str, float, Bounded[int] | Bounded[float]]] = [
        ("--users", args.users, defaults.USERS),
        ("--rate", args.rate, defaults.RATE),
        ("--duration", args.duration, defaults.DURATION),
        ("--work-ms", args.work_ms, defaults.WORK_MS),
        ("--interval", args.interval, INTERVAL),
        ("--processes", args.processes, defaults.PROCESSES),
        ("--zombie-cap", args.zombie_cap, defaults.ZOMBIE_CAP),
        ("--server-timeout", args.server_timeout, defaults.SERVER_TIMEOUT),
        ("--stop-grace", args.stop_grace, defaults.STOP_GRACE),
        ("--expect-status", args.expect_status, defaults.EXPECT_STATUS),
        ("--max-failures", args.max_failures, defaults.MAX_FAILURES),
        ("--settle", args.settle, defaults.SETTLE),
        ("--worker-timeout", args.worker_timeout, defaults.WORKER_TIMEOUT),
    ]
    for flag, value, bounds in bounded:
        problem = bounds.problem(flag, value)
        if problem is not None:
            raise UsageError(problem)
    checks = [
        (not (args.web and workers is not None), "--expect-workers is not allowed with --web"),
        (1 <= args.web_port <= 65535, "--web-port must be 1 to 65535"),
        (workers is None or 1 <= workers <= 256, "--expect-workers must be 1 to 256"),
        (
            (workers is None) == (args.master_bind is None),
            "--expect-workers and --master-bind go together",
        ),
        (1 <= args.master_port <= 65535, "--master-port must be 1 to 65535"),
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
        (args.locustfile.is_file(), f"--locustfile {args.locustfile} is not a file"),
        (
            args.protocol == "http" or args.locustfile == LOCUSTFILE,
            "--protocol raw uses its own client; it cannot be combined with --locustfile",
        ),
        (all(path.startswith("/") for path in args.path), "--path must start with /"),
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
        chosen = scenarios.select(names, strategy, args.all, args.server_cmd, args.containers)
        if args.init is not None and not args.pid1:
            raise ValueError("--init goes with --pid1")
        if args.pid1:
            chosen = scenarios.as_pid1(chosen, args.init or "none")
        _check_pid1(chosen, "--pid1" if args.pid1 else None)
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
        events=EventSources(args.events),
        stop_grace=args.stop_grace,
    )
    return RunPlan(chosen, settings, args.out, debug_wanted(args.debug))


def _check_pid1(chosen: list[scenarios.Scenario], flag: str | None) -> None:
    """ValueError, in one line, where a chosen scenario's server cannot run as PID 1 here."""
    for init in dict.fromkeys(scenario.init for scenario in chosen if scenario.pid1):
        reason = pidns.unavailable(init)
        if reason is not None:
            who = flag or next(s.name for s in chosen if s.pid1 and s.init == init)
            raise ValueError(f"{who}: {reason}")


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
    elif status == contract.run_failed(problem):  # the missing report is what went wrong
        print(f"loadtest: {status}", file=sys.stderr)
    else:  # interrupted, or failed, and the report is missing too: one line says both
        print(f"loadtest: {status}; {problem}", file=sys.stderr)
    harness.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
