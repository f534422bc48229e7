"""Ctrl-C (SIGINT) and SIGTERM in the harness: the first stops the run, none stops the clean-up.

The first signal raises KeyboardInterrupt, so the run unwinds to its clean-up. Any
later one is only counted: a second or third Ctrl-C must not cut the clean-up short,
or the server and Locust would outlive the harness and the records would say
"running". Clean-up code runs :meth:`Interrupts.shielded`: a first signal that arrives
inside it is held until the block ends, then raised.

Signals are process-wide, so there is one :data:`INTERRUPTS` per process. The handler
does no I/O: it counts, notes the time and (at most once) raises.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    def __init__(self) -> None:
        self.count = 0
        self.first_at: float | None = None
        """Unix time of the first signal: samples taken later do not describe the run."""
        self._shield = 0
        self._raised = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        self.count, self.first_at, self._raised = 0, None, False
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def reset(self) -> None:
        """Count afresh, the handlers kept: the next signal raises again (the report that
        follows a run is stopped by a Ctrl-C, even after one stopped the run)."""
        self.count, self.first_at, self._raised = 0, None, False

    def hold(self) -> None:
        """From now on signals are only counted, never raised: what is left (printing what
        was written) must not end in a traceback."""
        self._raised = True

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """Run a block that no signal interrupts; a first signal is raised after it."""
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1
        self._raise_held()

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.first_at is None:
            self.first_at = time.time()
        self._raise_held()

    def _raise_held(self) -> None:
        if self.count and not self._raised and not self._shield:
            self._raised = True
            raise KeyboardInterrupt


INTERRUPTS = Interrupts()
