"""Sampling in the background: a daemon thread writes one CSV row per sample.

The harness runs this in its own process while it drives the load, so the thread
must never raise into it: a vanished target ends sampling quietly
(``target_gone``); any other failure ends it too, is kept in ``error`` as one line
naming the cause ("disk full writing samples.csv") and handed once to ``on_error``, so
the harness can stop the load at once instead of going on blind. Each row goes to the
file whole in one write, or not at all: a write that fails half-way is cut back off,
so the CSV always ends with a complete row.
Sample times are random (Poisson sampling): the gaps are exponential with the
interval as their mean, so no rhythm of the load can lock onto the sampler. A fixed
grid whose step divides the load's period sees the same phase of every period (a
reaper-loop run showed 0 live children in all 409 samples at 50 ms); random times
see every phase in proportion to its length, so the share of samples that find a
state is an unbiased estimate of the share of time spent in it. Each row records
when it was taken; readers weight by the gaps (reports/series.py).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from diagnostics.contract import SAMPLE_COLUMNS
from diagnostics.defaults import INTERVAL
from diagnostics.diskio import describe
from diagnostics.errors import DiagnosticsError, NoSuchProcess
from diagnostics.sampler import Sample, Sampler

_Told = TypeVar("_Told")

log = logging.getLogger(__name__)


class Recorder:
    """Samples ``pid`` at random times, ``interval`` seconds apart on average, into ``csv_path``.

    ``rng`` draws the gaps; pass a seeded ``random.Random`` for a reproducible schedule.
    """

    def __init__(
        self,
        pid: int,
        csv_path: Path,
        interval: float = INTERVAL.default,
        on_sample: Callable[[Sample], None] | None = None,
        rng: random.Random | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        problem = INTERVAL.problem("interval", interval)
        if problem is not None:
            raise ValueError(f"{problem}, not {interval!r}")
        self.pid = pid
        self.csv_path = Path(csv_path)
        self.interval = interval
        self.on_sample = on_sample
        self._rng = rng or random.Random()
        self.on_error = on_error
        self.latest: Sample | None = None
        self.target_gone = False
        self.error: str | None = None  # why sampling stopped, other than the target going
        self._error_told = False
        self._lock = threading.Lock()  # one sample and one row at a time
        self._notify = threading.RLock()  # one on_sample call at a time (re-entrant)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampler: Sampler | None = None
        self._fd: int | None = None
        self._size = 0  # bytes of whole rows on file

    def start(self) -> None:
        """Open the CSV, write the header and start the sampling thread.

        A target that is already gone is not an error here: ``target_gone`` is set
        and the CSV holds only its header.
        """
        if self._thread is not None:
            raise RuntimeError("Recorder already started")
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.csv_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._append(SAMPLE_COLUMNS)
            self._sampler = Sampler(self.pid, count_listener_holders=True)
        except NoSuchProcess:
            self.target_gone = True
        except OSError as exc:
            self._failed(describe(exc, f"writing {self.csv_path.name}"))
        except DiagnosticsError as exc:
            self._failed(str(exc))
        self._thread = threading.Thread(target=self._run, name=f"recorder-{self.pid}", daemon=True)
        self._thread.start()

    def sample_now(self) -> Sample | None:
        """Take and write one sample now; None if the target is gone or sampling ended."""
        return self._record()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until sampling ends by itself (target gone, error); True if it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread, wait for it and close the file. Safe to call more than once."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Recorder:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def next_gap(self) -> float:
        """Seconds from one sampling time to the next: exponential, mean ``interval``."""
        return self._rng.expovariate(1.0 / self.interval)

    def _run(self) -> None:
        """One sample at once (the state before anything happens), then at the points of a
        Poisson process.

        The times are drawn ahead, from the schedule, not from when the last sample
        ended: a slow sample delays only itself. A time already past when its turn
        comes is skipped (by memorylessness the times after it are still Poisson).
        """
        deadline = time.monotonic()
        while True:
            if self._record() is None:
                return
            now = time.monotonic()
            deadline += self.next_gap()
            while deadline < now:  # fell behind: drop the times already gone
                deadline += self.next_gap()
            if self._stop.wait(deadline - now):
                return

    def _record(self) -> Sample | None:
        """One sample, written and handed to ``on_sample``; None once sampling cannot go on.

        ``on_sample`` runs in the sampling thread, or in the caller's for
        :meth:`sample_now`, never two at once; it runs outside the sampling lock, so
        it may itself call :meth:`sample_now`. ``on_error`` is called once, the same way,
        when sampling has just failed.
        """
        with self._lock:
            sample = self._take()
            tell = self.error is not None and not self._error_told
            self._error_told = self._error_told or tell
        if tell and self.on_error is not None and self.error is not None:
            self._notify_safely(self.on_error, self.error)
        if sample is not None and self.on_sample is not None:
            self._notify_safely(self.on_sample, sample)
        return sample

    def _notify_safely(self, callback: Callable[[_Told], None], value: _Told) -> None:
        with self._notify:
            try:
                callback(value)
            except Exception:
                log.exception("recorder callback failed; sampling goes on")

    def _take(self) -> Sample | None:
        """One sample, written; None once sampling cannot go on. Called with the lock held."""
        if self._sampler is None or self._fd is None or self.target_gone or self.error:
            return None
        try:
            sample = self._sampler.sample()
        except NoSuchProcess:
            self.target_gone = True
            return None
        except Exception as exc:  # the harness must never see this thread's failures
            self._failed(f"sampling PID {self.pid} failed: {type(exc).__name__}: {exc}")
            return None
        try:
            self._append(sample.csv_row())
        except OSError as exc:
            self._failed(describe(exc, f"writing {self.csv_path.name}"))
            return None
        self.latest = sample
        return sample

    def _append(self, row: Iterable[str]) -> None:
        """Write one whole CSV row, or (cutting off a partial write) none of it."""
        assert self._fd is not None
        line = io.StringIO()
        csv.writer(line).writerow(row)
        encoded = line.getvalue().encode("utf-8")
        data = memoryview(encoded)
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
                os.lseek(self._fd, self._size, os.SEEK_SET)
            raise
        self._size += len(encoded)

    def _failed(self, message: str) -> None:
        """Sampling ends here; the owner says so (``error``, ``on_error``), not a log line."""
        self.error = message
