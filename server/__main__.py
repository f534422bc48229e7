"""``python -m server``: the fork-per-connection HTTP server under test."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from server.forking import ForkingHTTPServer, ServerConfig
from server.reapers import STRATEGIES


def build_parser() -> argparse.ArgumentParser:
    strategies = "\n".join(f"  {name:7} {cls.summary}" for name, cls in STRATEGIES.items())
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="A fork-per-connection HTTP server: GET /NAME answers 'Hello, NAME!'.",
        epilog=f"reaping strategies:\n{strategies}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; '' = all)"
    )
    parser.add_argument(
        "--port", type=_port, default=8888, help="port (default 8888; 0 picks a free one)"
    )
    parser.add_argument(
        "--reaper",
        choices=sorted(STRATEGIES),
        default="loop",
        help="how SIGCHLD is handled (default loop)",
    )
    parser.add_argument(
        "--no-reaper",
        dest="reaper",
        action="store_const",
        const="none",
        help="same as --reaper none: every request leaves a zombie",
    )
    parser.add_argument(
        "--leak-client-fd",
        action="store_true",
        help="fault: the parent never closes its copy of the client socket",
    )
    parser.add_argument(
        "--work-ms",
        type=_non_negative(int),
        default=0,
        help="milliseconds each child works before answering (default 0)",
    )
    parser.add_argument(
        "--backlog", type=_positive(int), default=1024, help="listen backlog (default 1024)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=5.0,
        help="seconds a child waits for the request head (default 5)",
    )
    parser.add_argument(
        "--grace",
        type=_non_negative(float),
        default=5.0,
        help="seconds to wait for in-flight children at shutdown (default 5)",
    )
    parser.add_argument(
        "--stats-file", type=Path, help="also write the final counters (JSON) to this file"
    )
    return parser


def _port(text: str) -> int:
    value = _non_negative(int)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0-65535)")
    return value


def _non_negative(kind: type[int] | type[float]):
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} must not be negative")
        return value

    return parse


def _positive(kind: type[int] | type[float]):
    def parse(text: str) -> int | float:
        value = _non_negative(kind)(text)
        if value == 0:
            raise argparse.ArgumentTypeError(f"{text} must be positive")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = ServerConfig(**vars(args))
    try:
        server = ForkingHTTPServer(config)
    except OSError as error:
        print(
            f"server: cannot listen on {config.host}:{config.port}: {error.strerror}",
            file=sys.stderr,
        )
        return 1
    print(f"Serving HTTP on {server.url} (pid {os.getpid()}, reaper {config.reaper})", flush=True)
    server.serve_forever()
    server.write_counters()
    return 0


if __name__ == "__main__":
    sys.exit(main())
