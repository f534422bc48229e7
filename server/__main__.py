"""``python -m server``: the fork-per-connection HTTP server under test.

The command line is read by a few lines of our own, not argparse or getopt:
they pull in re and gettext, which add 370 to 650 KB to the parent, and the
parent's memory is what every fork copies. Without argparse and urllib.parse
the server answered about a quarter more requests per second (wrk, 20
connections).
"""

from __future__ import annotations

import os
import sys

from server.forking import ForkingHTTPServer, ServerConfig
from server.reapers import STRATEGIES
from server.speed import bind_symbols_now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

PROG = "python -m server"


class UsageError(Exception):
    pass


def usage() -> str:
    flags = " ".join(f"[{spec}]" for spec, _key, _convert, _help in OPTIONS)
    lines = [
        f"usage: {PROG} {flags}",
        "",
        "A fork-per-connection HTTP server: GET /NAME answers 'Hello, NAME!'.",
        "",
        "options:",
        "  -h, --help            show this help and exit",
        *(f"  {spec:21} {text}" for spec, _key, _convert, text in OPTIONS),
        "",
        "reaping strategies:",
        *(f"  {name:7} {cls.summary}" for name, cls in STRATEGIES.items()),
        "",
        "The last line on stdout is the final counters (JSON). If --stats-file cannot be",
        "written, that line is still printed, a warning follows on stderr, and the exit",
        "status is 1. At start the server restarts itself once with LD_BIND_NOW=1 (same",
        "PID) so that its children find every library function resolved; if that exec",
        "fails it says so in one line and serves as it is.",
    ]
    return "\n".join(lines)


def _number(kind: type[int] | type[float], low: float, high: float | None = None):
    def parse(flag: str, text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise UsageError(f"{flag}: {text!r} is not a number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise UsageError(f"{flag}: {text} must be {bound}")
        return value

    return parse


def _text(_flag: str, text: str) -> str:
    return text


def _constant(value: object) -> Callable[[str, str], object]:
    """A switch: the flag alone sets ``value``."""
    return lambda _flag, _text: value


def _strategy(flag: str, text: str) -> str:
    if text not in STRATEGIES:
        raise UsageError(f"{flag}: {text!r} is not one of {', '.join(STRATEGIES)}")
    return text


OPTIONS: list[tuple[str, str, Callable[[str, str], object], str]] = [
    # (flag [VALUE], ServerConfig key, how its text becomes the value, help)
    ("--host HOST", "host", _text,
     "address to bind (default 127.0.0.1; '' = all interfaces)"),
    ("--port PORT", "port", _number(int, 0, 65535),
     "port (default 8888; 0 picks a free one)"),
    ("--reaper STRATEGY", "reaper", _strategy,
     "how SIGCHLD is handled (default loop): see below"),
    ("--no-reaper", "reaper", _constant("none"),
     "same as --reaper none: every request leaves a zombie"),
    ("--leak-client-fd", "leak_client_fd", _constant(True),
     "fault: the parent never closes its client sockets"),
    ("--orphans", "orphans", _constant(True),
     "each child leaves a grandchild that outlives it (cmd &): an orphan"),
    ("--child-keeps-listener", "child_keeps_listener", _constant(True),
     "fault: children never close the listening socket"),
    ("--work-ms MS", "work_ms", _number(int, 0),
     "milliseconds each child works before answering (default 0)"),
    ("--backlog N", "backlog", _number(int, 1),
     "listen backlog (default 1024)"),
    ("--timeout SECONDS", "timeout", _number(float, 0.001),
     "seconds a child waits for the request head (default 5)"),
    ("--grace SECONDS", "grace", _number(float, 0),
     "seconds to wait for children in flight at shutdown (default 5)"),
    ("--stats-file PATH", "stats_file", _text,
     "also write the final counters (JSON) there; see below"),
    ("--no-rebind", "rebind", _constant(False),
     "do not restart once with LD_BIND_NOW=1 at start; see below"),
]  # fmt: skip
"""Every flag, once: a new one is a row here and a field of ServerConfig."""
FLAGS = {spec.split()[0]: (key, convert) for spec, key, convert, _help in OPTIONS}
TAKES_VALUE = {spec.split()[0] for spec, _key, _convert, _help in OPTIONS if " " in spec}


def parse_args(argv: list[str]) -> tuple[ServerConfig, bool] | None:
    """(the configuration the flags ask for, whether to restart with LD_BIND_NOW);
    None when help was asked; UsageError if bad."""
    settings: dict[str, Any] = {}  # each value as its converter made it
    for flag, text in _flag_values(argv):
        if flag in ("-h", "--help"):
            return None
        key, convert = FLAGS[flag]
        settings[key] = convert(flag, text)
    rebind = settings.pop("rebind", True)
    return ServerConfig(**settings), rebind


def _flag_values(argv: list[str]) -> Iterator[tuple[str, str]]:
    """(flag, value) from ``--flag VALUE``, ``--flag=VALUE`` and bare switches."""
    args = iter(argv)
    for arg in args:
        flag, equals, text = arg.partition("=")
        if flag in TAKES_VALUE:
            if not equals:
                following = next(args, None)
                if following is None:
                    raise UsageError(f"{flag} needs a value")
                text = following
            yield flag, text
        elif flag in FLAGS or flag in ("-h", "--help"):
            if equals:
                raise UsageError(f"{flag} takes no value")
            yield flag, ""
        else:
            raise UsageError(f"unrecognized argument {arg!r}")


def main(argv: list[str] | None = None) -> int:
    try:
        parsed = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as error:
        print(f"usage: {PROG} [--help] [options]\n{PROG}: error: {error}", file=sys.stderr)
        return 2
    if parsed is None:
        print(usage())
        return 0
    config, rebind = parsed
    rebind_error = bind_symbols_now() if rebind else None
    if rebind_error is not None:
        print(
            f"{PROG}: warning: cannot restart with LD_BIND_NOW=1 ({rebind_error.strerror}):"
            " serving without it (--no-rebind skips the attempt)",
            file=sys.stderr,
            flush=True,
        )
    try:
        server = ForkingHTTPServer(config)
    except OSError as error:
        print(
            f"{PROG}: cannot listen on {config.host}:{config.port}: {error.strerror}",
            file=sys.stderr,
        )
        return 1
    print(f"Serving HTTP on {server.url} (pid {os.getpid()}, reaper {config.reaper})", flush=True)
    server.serve_forever()
    return 0 if server.write_counters() else 1


if __name__ == "__main__":
    sys.exit(main())
