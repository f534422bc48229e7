"""What the sampler's thread hands the scenario's thread: the one place it writes.

The sampler calls back from its own thread on every sample. The scenario's record
belongs to the thread that runs the scenario (loadtest/experiment.py), so the callback
writes only here, under one lock, and the scenario copies the figures into its record
where it reads them: the peak when it concludes, the last sample before a Ctrl-C when it
is interrupted, the zombies of every sample when it checks them against the event
record. The zombie cap is handed over the same way, by loadtest/cap.py's event
and the moment kept with it.
"""

from __future__ import annotations

import threading

from diagnostics.contract import Sample


class SamplerHandoff:
    """The peak of zombies and the last sample before an interrupt, as the sampler saw them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peak = 0
        self._before_interrupt: Sample | None = None
        self._closed = False
        self._zombies: list[tuple[float, int]] = []

    def add(self, sample: Sample, interrupted_at: float | None) -> None:
        """Called from the sampler's thread with each sample; ``interrupted_at`` is the unix
        time of the first Ctrl-C, if any (samples after it describe the clean-up)."""
        with self._lock:
            if interrupted_at is None or sample.time < interrupted_at:
                self._before_interrupt = sample
            if not self._closed:
                self._peak = max(self._peak, sample.zombies)
            self._zombies.append((sample.time, sample.zombies + sample.descendant_zombies))

    def close(self) -> None:
        """The final sample is taken: the peak is of the load and the settling after it,
        not of the server's shutdown."""
        with self._lock:
            self._closed = True

    @property
    def peak(self) -> int:
        """The most zombies one sample saw, until :meth:`close` (scenario.json's peak_zombies)."""
        with self._lock:
            return self._peak

    @property
    def zombie_samples(self) -> list[tuple[float, int]]:
        """(time, zombies in the whole tree) of every sample: what the event record is
        checked against (no sample may show more zombies than the events)."""
        with self._lock:
            return list(self._zombies)

    @property
    def before_interrupt(self) -> Sample | None:
        """The last sample taken before the first Ctrl-C (or the latest, without one)."""
        with self._lock:
            return self._before_interrupt
