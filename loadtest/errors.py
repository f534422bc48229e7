"""The exceptions the harness shows to users: a one-line reason, never a traceback."""


class HarnessError(Exception):
    """Something stopped a scenario or the run; ``str()`` is the line to print."""

    status = "failed"
    """What scenario.json records as the scenario's status."""


class ServerDied(HarnessError):
    status = "server-died"
