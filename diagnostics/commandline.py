"""What every command line of the project shares: one-line usage errors and SIGTERM as Ctrl-C.

Standard library only and importing nothing of the project, so loadtest, diagnostics,
reports and bench all take these from here (diagnostics imports neither of the others).
"""

from __future__ import annotations

import argparse
import signal
from types import FrameType
from typing import NoReturn


class UsageError(Exception):
    """A bad flag; ``str()`` is the one line to print before exiting 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing a usage block and exiting.

    The caller prints the one line and exits 2, after anything it must do first.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    """No I/O in a handler: just raise, and the code that handles Ctrl-C cleans up."""
    raise KeyboardInterrupt


def sigterm_as_ctrl_c() -> None:
    """SIGTERM ends the command the way Ctrl-C does: cleaned up, data kept, exit 130."""
    signal.signal(signal.SIGTERM, _interrupt)
