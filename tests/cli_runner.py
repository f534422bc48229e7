"""One command line run two ways: in this process (fast) or through `python -m` (slow).

A bad-input test checks the same parser and the same one-line error either way; the
subprocess run adds the real entry point's exit status and costs a second and a half of
imports, so it is marked slow and `make test-fast` takes the in-process run alone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MAIN_MODULES = {"diagnostics": "diagnostics.cli"}
"""Where a command's `main` lives when its __main__ runs it on import."""

RUNNERS = ["in-process", pytest.param("subprocess", marks=pytest.mark.slow)]
"""Parametrize a `runner` fixture with these: the subprocess run is part of `make test` only."""


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


Run = Callable[..., CliResult]


def runner_for(module: str, how: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """A function running `python -m <module> *args` in-process (its `main`) or as a child."""

    def in_process(*args: str) -> CliResult:
        where = MAIN_MODULES.get(module, f"{module}.__main__")
        main: Callable[[Sequence[str]], int] = import_module(where).main
        capsys.readouterr()
        on_sigterm = signal.getsignal(signal.SIGTERM)  # a command may take SIGTERM as Ctrl-C
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's --help or a stray sys.exit
            code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            signal.signal(signal.SIGTERM, on_sigterm)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    def as_child(*args: str) -> CliResult:
        result = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return CliResult(result.returncode, result.stdout, result.stderr)

    return in_process if how == "in-process" else as_child


def assert_one_line_error(
    result: CliResult | subprocess.CompletedProcess[str], fragment: str
) -> None:
    """Bad input, as every command line of the project answers it: exit status 2 and
    one line on stderr that names ``fragment``, never a traceback."""
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr
