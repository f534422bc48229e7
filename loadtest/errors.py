"""The exceptions the harness shows to users: a one-line reason, never a traceback."""

import argparse
from typing import NoReturn


class HarnessError(Exception):
    """Something stopped a scenario or the run; ``str()`` is the line to print."""

    status = "failed"
    """What scenario.json records as the scenario's status."""
    exit_code = 1


class ServerDied(HarnessError):
    status = "server-died"


class FailedRequests(HarnessError):
    """The load ran, but too many of its requests failed: the server was not measured."""

    status = "failed-requests"


class ServerNotListening(HarnessError):
    """The server never opened its port: a bad --server-cmd, as much as a bad flag."""

    exit_code = 2


class UsageError(Exception):
    """A bad flag; ``str()`` is the one line to print before exiting 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting.

    The caller prints the one line and exits 2, after anything it must do first.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)
