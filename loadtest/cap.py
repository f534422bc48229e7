"""The zombie cap of one scenario: how high it may be, who holds it, and when it is reached.

The kernel holds it where it can (loadtest/cgroup.py: the server runs in a pids cgroup
of its own, and a fork past pids.max fails); the sampler's count is the second line,
and the only one where no cgroup can be made. Either way the cap is reached once, from
whichever thread sees it first; the scenario's own thread records that moment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics.sampler import Sample
from loadtest import cgroup
from loadtest.errors import HarnessError
from loadtest.processes import reap_orphans

HEADROOM_RESERVE = 2000
"""PIDs always left for the rest of the machine, whatever the cap asks for."""
MIN_CAP = 100


def effective_cap(asked: int, headroom: int) -> int:
    """The zombie cap, lowered so that the run never takes the machine's last PIDs."""
    cap = min(asked, (headroom - HEADROOM_RESERVE) // 2)
    if cap < MIN_CAP:
        raise HarnessError(
            f"only {headroom} PIDs left on this machine: not enough headroom to make zombies safely"
        )
    return cap


def over_cap(sample: Sample, cap: int, refused: int) -> bool:
    """Whether a sample shows the server at the cap: the zombies it holds (every zombie
    holds a PID, grandchildren's too), or a fork the kernel refused at pids.max."""
    held = sample.zombies + sample.descendant_zombies
    return held >= cap or refused > 0


@dataclass(frozen=True, slots=True)
class Enforcement:
    """Who holds the cap: scenario.json's ``cap_enforcement`` and ``cgroup``."""

    how: str
    """"kernel" (a pids cgroup of the server's own) or "sampling" (no cgroup could be made)."""
    cgroup: dict[str, Any] | None
    """The cgroup's path and version; None without one."""
    warning: str | None = None
    """Why the cap is only sampled, when it is."""


@dataclass(frozen=True, slots=True)
class Held:
    """pids.max once the server is ready, added to scenario.json's ``cgroup``."""

    baseline: int
    """PIDs the server's cgroup held before the load (the server, its threads and workers)."""
    pids_max: int


@dataclass(frozen=True, slots=True)
class Released:
    """What the cgroup saw, added to scenario.json's ``cgroup`` once it is removed."""

    forks_refused: int
    peak: int | None
    problem: str | None
    """Why the cgroup could not be removed; None when it was."""


class ZombieCap:
    """The cap of one scenario, as it is chosen, enforced and reached.

    Each step returns what the scenario records (loadtest/experiment.py assigns it); the
    moment the cap is reached is kept here, from whichever thread saw it first, until the
    scenario's own thread reads :attr:`reached_at`.
    """

    def __init__(self) -> None:
        self.value = 0
        """The effective cap (:meth:`choose`)."""
        self.cgroup: cgroup.PidsCgroup | None = None
        self._reached = threading.Event()
        self._reached_at: float | None = None
        self._lock = threading.Lock()

    @property
    def procs_file(self) -> Path | None:
        """Where the server's start-up guard joins the cgroup; None without one."""
        return self.cgroup.procs_file if self.cgroup is not None else None

    def choose(self, asked: int, headroom: int) -> int:
        self.value = effective_cap(asked, headroom)
        return self.value

    def make_cgroup(self, name: str) -> Enforcement:
        """The server's own pids cgroup, or the reason there is none (then the cap is sampled).

        Until the server is ready, pids.max allows twice the cap: room to start (threads,
        prefork workers), and effective_cap leaves room for it on the machine.
        """
        try:
            self.cgroup = cgroup.create(name, 2 * self.value)
        except cgroup.CgroupUnavailable as why:
            return Enforcement("sampling", None, f"cap enforced by sampling: may overshoot ({why})")
        return Enforcement(
            "kernel", {"path": str(self.cgroup.path), "version": self.cgroup.version}
        )

    def hold(self) -> Held | None:
        """Now that the server is ready: pids.max = the cap + what it holds before the load."""
        if self.cgroup is None:
            return None
        baseline = self.cgroup.current()
        if baseline is None:
            raise HarnessError(f"cannot read pids.current of {self.cgroup.path}")
        try:
            self.cgroup.limit(self.value + baseline)
        except OSError as error:
            raise HarnessError(
                f"cannot set pids.max of {self.cgroup.path}: {error.strerror}"
            ) from None
        return Held(baseline=baseline, pids_max=self.value + baseline)

    def kernel_refused(self) -> bool:
        """The kernel has refused a fork at pids.max: the server is at the cap."""
        return self.cgroup is not None and self.cgroup.refusals() > 0

    def shown_by(self, sample: Sample) -> bool:
        """Whether this sample (or the kernel, since) shows the server at the cap."""
        refused = self.cgroup.refusals() if self.cgroup is not None else 0
        return over_cap(sample, self.value, refused)

    def reach(self, elapsed: float) -> bool:
        """Note the cap reached ``elapsed`` seconds into sampling; True only the first time.

        Safe from any thread: the moment is kept here, not written into the record.
        """
        with self._lock:
            if self._reached.is_set():
                return False
            self._reached_at = round(elapsed, 3)
            self._reached.set()
        return True

    @property
    def reached(self) -> bool:
        return self._reached.is_set()

    @property
    def reached_at(self) -> float | None:
        """Seconds into sampling when the cap was reached (scenario.json's ``capped_at``)."""
        with self._lock:
            return self._reached_at

    def release(self) -> Released | None:
        """Keep what the cgroup saw (forks refused, peak), then empty and remove it."""
        if self.cgroup is None:
            return None
        refused, peak = self.cgroup.refusals(), self.cgroup.peak()
        return Released(refused, peak, self.cgroup.remove(reap=reap_orphans))
