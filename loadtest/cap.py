"""The zombie cap of one scenario: how high it may be, who holds it, and when it is reached.

The kernel holds it where it can (loadtest/cgroup.py: the server runs in a pids cgroup
of its own, and a fork past pids.max fails); the sampler's count is the second line,
and the only one where no cgroup can be made. Either way the cap is reached once, from
whichever thread sees it first; the scenario's own thread records that moment.

**The cap is of zombies, exactly.** A pids cgroup counts tasks, live and zombie alike, so
``pids.max`` is the cap plus the server's *live* tasks (the cgroup's task list, which names
no zombie) when the limit is set, and it is tightened whenever the live tasks fall lower
(helpers that were running at start-up exit): zombies can never be more than the cap,
whatever the server started with. The price is that live processes the server adds
during the load (a prefork pool that grows, children in flight) take room from the
zombies: when a fork is refused while the zombies are fewer than the live processes
added, the server's live processes reached the limit, not its zombies, and the run says
that (:attr:`Reached.by`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics.contract import BY_LIVE, BY_ZOMBIES
from diagnostics.sampler import Sample
from loadtest import cgroup, defaults
from loadtest.errors import HarnessError
from loadtest.processes import reap_orphans
from loadtest.trace import TRACE

HEADROOM_RESERVE = 2000
"""PIDs always left for the rest of the machine, whatever the cap asks for."""
MIN_CAP = defaults.ZOMBIE_CAP.low
"""The lowest cap the machine's headroom may lower --zombie-cap to (loadtest/defaults.py
says why)."""


def effective_cap(asked: int, headroom: int) -> int:
    """The zombie cap, lowered so that the run never takes the machine's last PIDs."""
    cap = min(asked, (headroom - HEADROOM_RESERVE) // 2)
    if cap < min(asked, MIN_CAP):
        raise HarnessError(
            f"only {headroom} PIDs left on this machine: a zombie cap of {MIN_CAP} needs"
            f" {HEADROOM_RESERVE + 2 * MIN_CAP} ({HEADROOM_RESERVE} are kept for the machine)"
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
    """Live tasks in the server's cgroup when the limit was set (the server, its threads
    and workers; zombies excluded)."""
    zombies: int
    """Zombies it already held then: they count toward the cap."""
    pids_max: int


@dataclass(frozen=True, slots=True)
class Reached:
    """The moment the cap was reached, and what filled the cgroup's room."""

    elapsed: float
    """Seconds into sampling (scenario.json's ``capped_at``)."""
    time: float
    """Unix time of the sample that showed it (or of the last sample before the kernel's
    refusal was seen): what the load did after this is the cap's doing."""
    by: str
    """BY_ZOMBIES, or BY_LIVE when the live processes the server added filled the limit."""
    zombies: int | None
    """Zombies in the cgroup then (the kernel's count; None without a cgroup)."""
    live: int | None
    """Live tasks in the cgroup then."""
    pids_max: int | None


@dataclass(frozen=True, slots=True)
class Released:
    """What the cgroup saw, added to scenario.json's ``cgroup`` once it is removed."""

    forks_refused: int
    peak: int | None
    pids_max: int | None
    """pids.max at the end (lower than at the start when it was tightened)."""
    killed: set[int]
    """Processes still in it at the end, which the harness killed."""
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
        self._floor: int | None = None
        """The fewest live tasks seen in the cgroup since the limit was set."""
        self._reached: Reached | None = None
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
        """Now that the server is ready: pids.max = the cap + its live tasks."""
        if self.cgroup is None:
            return None
        live, current = self.cgroup.live(), self.cgroup.current()
        if live is None or current is None:
            raise HarnessError(f"cannot read the tasks of {self.cgroup.path}")
        self._floor = live
        self._set_limit(self.value + live)
        return Held(baseline=live, zombies=max(current - live, 0), pids_max=self.value + live)

    def tighten(self) -> int | None:
        """Lower pids.max when the cgroup's live tasks fell below the fewest seen so far
        (start-up helpers that exited); the new limit, or None when it stands."""
        if self.cgroup is None or self._floor is None:
            return None
        live = self.cgroup.live()
        if live is None or live >= self._floor:
            return None
        self._floor = live
        try:
            self._set_limit(self.value + live)
        except HarnessError:
            return None  # gone with the server: nothing left to hold
        return self.value + live

    def _set_limit(self, tasks: int) -> None:
        assert self.cgroup is not None
        try:
            self.cgroup.limit(tasks)
        except OSError as error:
            raise HarnessError(
                f"cannot set pids.max of {self.cgroup.path}: {error.strerror}"
            ) from None

    def kernel_refused(self) -> bool:
        """The kernel has refused a fork at pids.max: the server is at the cap."""
        return self.cgroup is not None and self.cgroup.refusals() > 0

    def shown_by(self, sample: Sample) -> bool:
        """Whether this sample (or the kernel, since) shows the server at the cap."""
        refused = self.cgroup.refusals() if self.cgroup is not None else 0
        return over_cap(sample, self.value, refused)

    def reach(
        self, elapsed: float, sample: Sample | None = None, seen_at: float | None = None
    ) -> bool:
        """Note the cap reached ``elapsed`` seconds into sampling, by ``sample`` or by a fork
        the kernel refused since the last sample (taken at ``seen_at``, unix time); True
        only the first time.

        Safe from any thread: the moment is kept here, not written into the record. What
        filled the room is read from the cgroup at once: its zombies against the live
        processes the server added since the limit was set.
        """
        with self._lock:
            if self._reached is not None:
                return False
            self._reached = self._what_reached(elapsed, sample, seen_at)
        TRACE(
            f"cap reached {elapsed:.3f} s into sampling by {self._reached.by}"
            f" (zombies {self._reached.zombies}, live tasks {self._reached.live},"
            f" pids.max {self._reached.pids_max})"
        )
        return True

    def _what_reached(
        self, elapsed: float, sample: Sample | None, seen_at: float | None
    ) -> Reached:
        now = sample.time if sample is not None else seen_at or time.time()
        if self.cgroup is None:
            return Reached(round(elapsed, 3), now, BY_ZOMBIES, None, None, None)
        live, current, floor = self.cgroup.live(), self.cgroup.current(), self._floor
        if live is None or current is None or floor is None:
            return Reached(round(elapsed, 3), now, BY_ZOMBIES, None, live, None)
        zombies = max(current - live, 0)
        sampled = sample is not None and sample.zombies + sample.descendant_zombies >= self.value
        by = BY_LIVE if not sampled and zombies < live - floor else BY_ZOMBIES
        return Reached(round(elapsed, 3), now, by, zombies, live, self.value + floor)

    @property
    def reached(self) -> bool:
        with self._lock:
            return self._reached is not None

    @property
    def reached_at(self) -> float | None:
        """Seconds into sampling when the cap was reached (scenario.json's ``capped_at``)."""
        with self._lock:
            return None if self._reached is None else self._reached.elapsed

    @property
    def reached_how(self) -> Reached | None:
        with self._lock:
            return self._reached

    def release(self) -> Released | None:
        """Keep what the cgroup saw (forks refused, peak), then empty and remove it."""
        if self.cgroup is None:
            return None
        refused, peak = self.cgroup.refusals(), self.cgroup.peak()
        limit = None if self._floor is None else self.value + self._floor
        killed, problem = self.cgroup.remove(reap=reap_orphans)
        return Released(refused, peak, limit, killed, problem)
