"""The suite's one way to wait: poll a condition until a deadline, then fail.

Nothing sleeps and hopes; the deadline is a bound on a broken run, not a delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEADLINE_S = 30.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it holds; fail the test with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.005)
