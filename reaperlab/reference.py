"""docs/reference.md's option lists, taken from the commands' own ``--help``.

A reference written by hand drifts from the parsers the day a flag is added; one made from
them cannot. Each command's block in the file sits between two markers::

    <!-- help: loadtest -->
    ...generated...
    <!-- /help -->

and ``python -m reaperlab.reference`` (``make docs``) rewrites what is between them with
that command's ``--help``, run as ``reaperlab`` runs it (:mod:`reaperlab.cli`), at a fixed
width so the text does not depend on the terminal. ``--check`` changes nothing and exits
1 when a block is stale; the test suite runs it. The prose around the blocks is the
reference's own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from reaperlab.cli import COMMANDS, command_line, usage

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
WIDTH = "100"
"""Columns argparse wraps the help at (it reads COLUMNS), the width of the docs' code."""
BLOCK = re.compile(r"(<!-- help: (?P<name>[a-z]+) -->\n)(?P<body>.*?)(<!-- /help -->)", re.S)


def help_text(name: str) -> str:
    """``reaperlab NAME --help`` as it prints (``reaperlab`` alone for its own usage)."""
    if name == "reaperlab":
        return usage() + "\n"
    result = subprocess.run(
        command_line(name, ["--help"]),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": WIDTH},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"reaperlab {name} --help exited {result.returncode}")
    return result.stdout


def rendered(text: str) -> str:
    """``text`` with every help block made anew."""

    def block(match: re.Match[str]) -> str:
        name = match["name"]
        if name != "reaperlab" and name not in COMMANDS:
            raise KeyError(f"docs/reference.md names no command {name!r}")
        return f"{match[1]}```\n{help_text(name)}```\n{match[4]}"

    return BLOCK.sub(block, text)


def main(argv: Sequence[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    text = REFERENCE.read_text()
    new = rendered(text)
    if new == text:
        return 0
    if check:
        print(f"{REFERENCE} is stale: run `make docs` to rewrite its option lists", file=sys.stderr)
        return 1
    REFERENCE.write_text(new)
    print(f"rewrote the option lists of {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
