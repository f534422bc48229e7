"""``reaperlab COMMAND [ARGS...]``: run one of the project's ``python -m`` commands.

Each subcommand execs ``python -P -m MODULE ARGS`` with this environment's
interpreter rather than importing the module and calling it, so that:

- the command is the ``python -m`` form, exactly: same options, help, exit
  statuses, signals and PID (a harness that samples ``reaperlab serve`` samples
  the server itself);
- the forking server's parent holds nothing of the dispatcher: exec starts a
  fresh interpreter, and what every fork copies is the server's memory alone;
- ``-P`` keeps the current directory off ``sys.path``: the packages have generic
  names (server, loadtest, diagnostics, reports), and a ``server/`` folder where
  the user stands must not shadow ours.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, NoReturn

PROG = "reaperlab"


class Command(NamedTuple):
    argv: tuple[str, ...]
    """What follows ``python -P -m``: the module, then any fixed arguments."""
    summary: str


COMMANDS: dict[str, Command] = {
    "loadtest": Command(
        ("loadtest",), "the forking server under Locust load while a sampler counts zombies"
    ),
    "serve": Command(("server",), "the fork-per-connection server in the foreground"),
    "doctor": Command(
        ("diagnostics", "doctor"), "diagnose one parent's zombies, or every parent's (--all)"
    ),
    "watch": Command(("diagnostics", "watch"), "sample a running process into a run directory"),
    "exporter": Command(
        ("diagnostics", "exporter"),
        "Prometheus metrics: zombies per parent, leak rate, time to the PID limit",
    ),
    "report": Command(("reports",), "redraw the plots and report of a run directory"),
    "bench": Command(("bench",), "the project's own speed beside the alternatives"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    return "\n".join(
        [
            f"usage: {PROG} COMMAND [ARGS...]",
            "",
            "See, prove or rule out a zombie leak in a forking server.",
            "",
            "commands:",
            *(f"  {name:{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()),
            "",
            "each is its python -m form, with the same options and exit statuses:",
            *(f"  {name:{width}}  python -m {' '.join(c.argv)}" for name, c in COMMANDS.items()),
            "",
            f"'{PROG} COMMAND --help' shows a command's options.",
        ]
    )


def command_line(name: str, args: Sequence[str]) -> list[str]:
    """The interpreter's argv that subcommand ``name`` execs."""
    return [sys.executable, "-P", "-m", *COMMANDS[name].argv, *args]


def compile_server() -> None:
    """Bytecode for the server before it starts (as the harness and ``make serve`` do).

    A server that compiles its own source keeps about 1 MB of the compiler's
    memory, and the forking parent's memory is what each fork copies. Compiling
    here costs the dispatcher, which exec then discards. An installation we may not
    write to is left as it is.
    """
    spec = importlib.util.find_spec("server")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(Path(folder), quiet=2)


def fail(message: str, status: int = 2) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Exec the subcommand; return only for help or a usage error."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(usage(), file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        fail(f"unknown command {name!r} (choose from {', '.join(COMMANDS)})")
    if not sys.executable:
        fail("cannot find this environment's Python interpreter", 1)
    if name == "serve":
        compile_server()
    command = command_line(name, rest)
    sys.stdout.flush()
    try:
        os.execv(command[0], command)
    except OSError as error:
        fail(f"cannot run {command[0]}: {error.strerror}", 1)
