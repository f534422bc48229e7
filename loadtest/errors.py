"""The exceptions the harness shows to users: a one-line reason, never a traceback."""

from diagnostics.contract import Status


class HarnessError(Exception):
    """Something stopped a scenario or the run; ``str()`` is the line to print."""

    status = Status.FAILED
    """What scenario.json records as the scenario's status."""
    exit_code = 1


class ServerDied(HarnessError):
    status = Status.SERVER_DIED


class FailedRequests(HarnessError):
    """The load ran, but too many of its requests failed: the server was not measured."""

    status = Status.FAILED_REQUESTS


class ServerNotListening(HarnessError):
    """The server never opened its port: a bad --server-cmd, as much as a bad flag."""

    exit_code = 2
