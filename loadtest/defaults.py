"""The load's settings: each default and allowed range once.

``python -m loadtest`` takes its defaults from here and checks each value with
:meth:`~diagnostics.defaults.Bounded.problem`; the harness's ``Settings``, ``LoadShape``,
``Expectations`` and ``WorkerOptions`` default to the same values. The sampling interval,
which ``diagnostics watch`` and the bench take too, is in diagnostics/defaults.py.

Standard library and diagnostics.defaults only: the Locust process imports it (through
loadtest/expectations.py).
"""

from __future__ import annotations

from diagnostics.defaults import Bounded

USERS = Bounded(20, 1)
"""Concurrent Locust users."""
RATE = Bounded(100.0, 0.0)
"""Total requests/s over all users; 0: as fast as they can."""
DURATION = Bounded(20, 1, 3600, "seconds")
"""Seconds of load per scenario: every load is bounded in time, an hour at most."""
PROCESSES = Bounded(1, 1, 64)
"""Locust worker processes on this machine."""
WORK_MS = Bounded(0, 0)
"""Milliseconds each child of our server works before answering."""
ZOMBIE_CAP = Bounded(
    5000, 100, 1_000_000, why="the cgroup's limit must also leave room for the children in flight"
)
"""Zombies at which the load stops (lowered when PIDs are short). At least 100: the pids
cgroup's limit also holds the children a server has in flight (one per concurrent user for
a fork-per-connection server); at most a million (Linux's pid_max is at most 4,194,304,
and the machine's headroom lowers the cap further: loadtest/cap.py)."""
SETTLE = Bounded(5.0, 0.0, 300.0, "seconds")
"""Seconds the final sample may wait for the server to settle after the load."""
STOP_GRACE = Bounded(10.0, 0.1, 300.0, "seconds")
"""Seconds a process the harness stops has to exit after its SIGTERM, before SIGKILL
(--stop-grace, for the server; loadtest/processes.py)."""
SERVER_TIMEOUT = Bounded(10.0, 0.1, None, "seconds")
"""Seconds a server may take to open its port."""
MAX_FAILURES = Bounded(1.0, 0.0, 100.0, "percent")
"""Percent of failed requests above which a scenario failed."""
EXPECT_STATUS = Bounded(200, 100, 599)
"""The HTTP status a success has."""
WORKER_TIMEOUT = Bounded(60.0, 1.0, 3600.0, "seconds")
"""Seconds the master waits for all workers before the run fails."""
