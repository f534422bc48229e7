"""``REAPERLAB_DEBUG=1`` (or ``python -m loadtest --debug``): harness.log, what the harness did.

A harness that misbehaves on someone's server runs three threads, four kinds of process
and a cgroup; without a trace nobody can tell what it did in which order. This is tini's
``-v`` and psutil's ``PSUTIL_DEBUG``: one switch, this one module, and nothing but an
attribute test when it is off. Every process started and ended (PID, command, how it
ended), every signal sent (to whom, why), every phase with its time, every cgroup action
(made, limited, tightened, emptied, removed), the freeze and the stop of Locust, the cap
reached, the settle's result and the status each scenario ended with land in
``harness.log`` in the run directory (:data:`diagnostics.contract.HARNESS_LOG`), one line
each::

      12.345 sampler    signal SIGSTOP -> group 4242 (locust): freeze at the zombie cap

(seconds since the run began, the thread, what happened). Signal handlers never call it:
a handler does no I/O, so a Ctrl-C is traced where the main thread catches it. A trace
that cannot be written (a full disk) goes quiet rather than fail the run it describes.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import IO

ENV = "REAPERLAB_DEBUG"
"""The environment switch; any value but empty or 0 turns the trace on."""


def wanted(flag: bool = False) -> bool:
    """Whether this run traces: ``--debug`` or REAPERLAB_DEBUG."""
    return flag or os.environ.get(ENV, "") not in ("", "0")


class Trace:
    """One trace per process (signals and threads are process-wide); off until started."""

    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        self._started = 0.0

    @property
    def on(self) -> bool:
        return self._file is not None

    def start(self, path: Path) -> None:
        """Trace into ``path`` from now on (appending: a run's scenarios share one log)."""
        self.stop()
        try:
            self._file = path.open("a", encoding="utf-8")
        except OSError:
            return
        self._started = time.monotonic()
        self(f"trace started {time.strftime('%Y-%m-%d %H:%M:%S')} by pid {os.getpid()}")

    def stop(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass
                self._file = None

    def __call__(self, what: str) -> None:
        """Note one thing the harness did; nothing at all when the trace is off."""
        if self._file is None:
            return
        line = (
            f"{time.monotonic() - self._started:10.3f} "
            f"{threading.current_thread().name[:10]:<10} {what}\n"
        )
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.write(line)
                self._file.flush()
            except OSError:  # the trace never fails the run it describes
                self._file = None


TRACE = Trace()
