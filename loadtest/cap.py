"""The zombie cap of one scenario: how high it may be, who holds it, and when it is reached.

The kernel holds it where it can (loadtest/cgroup.py: the server runs in a pids cgroup
of its own, and a fork past pids.max fails); the sampler's count is the second line,
and the only one where no cgroup can be made. Either way the cap is reached once, from
whichever thread sees it first, and that moment is written into the scenario's record.
"""

from __future__ import annotations

import threading
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


class ZombieCap:
    """The cap of one scenario, kept in its record (``cap``, ``cap_enforcement``,
    ``cgroup``, ``capped_at``) as it is chosen, enforced and reached."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.cgroup: cgroup.PidsCgroup | None = None
        self._reached = threading.Event()
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        return self.record["cap"]

    @property
    def procs_file(self) -> Path | None:
        """Where the server's start-up guard joins the cgroup; None without one."""
        return self.cgroup.procs_file if self.cgroup is not None else None

    def choose(self, asked: int, headroom: int) -> None:
        self.record["cap"] = effective_cap(asked, headroom)

    def make_cgroup(self, name: str) -> None:
        """The server's own pids cgroup, or the reason there is none (then the cap is sampled).

        Until the server is ready, pids.max allows twice the cap: room to start (threads,
        prefork workers), and effective_cap leaves room for it on the machine.
        """
        try:
            self.cgroup = cgroup.create(name, 2 * self.record["cap"])
        except cgroup.CgroupUnavailable as why:
            self.record["cap_enforcement"] = "sampling"
            self.record["warnings"].append(f"cap enforced by sampling: may overshoot ({why})")
            return
        self.record["cap_enforcement"] = "kernel"
        self.record["cgroup"] = {
            "path": str(self.cgroup.path),
            "version": self.cgroup.version,
        }

    def hold(self) -> None:
        """Now that the server is ready: pids.max = the cap + what it holds before the load."""
        if self.cgroup is None:
            return
        baseline = self.cgroup.current()
        if baseline is None:
            raise HarnessError(f"cannot read pids.current of {self.cgroup.path}")
        try:
            self.cgroup.limit(self.record["cap"] + baseline)
        except OSError as error:
            raise HarnessError(
                f"cannot set pids.max of {self.cgroup.path}: {error.strerror}"
            ) from None
        self.record["cgroup"].update(baseline=baseline, pids_max=self.record["cap"] + baseline)

    def kernel_refused(self) -> bool:
        """The kernel has refused a fork at pids.max: the server is at the cap."""
        return self.cgroup is not None and self.cgroup.refusals() > 0

    def shown_by(self, sample: Sample) -> bool:
        """Whether this sample (or the kernel, since) shows the server at the cap."""
        refused = self.cgroup.refusals() if self.cgroup is not None else 0
        return over_cap(sample, self.value, refused)

    def reach(self, elapsed: float) -> bool:
        """Note the cap reached ``elapsed`` seconds into sampling; True only the first time."""
        with self._lock:
            if self._reached.is_set():
                return False
            self._reached.set()
            self.record["capped_at"] = round(elapsed, 3)
        return True

    @property
    def reached(self) -> bool:
        return self._reached.is_set()

    def release(self) -> None:
        """Keep what the cgroup saw (forks refused, peak), then empty and remove it."""
        if self.cgroup is None:
            return
        refused, peak = self.cgroup.refusals(), self.cgroup.peak()
        self.record["cgroup"].update(forks_refused=refused, peak=peak)
        problem = self.cgroup.remove(reap=reap_orphans)
        if problem is not None:
            self.record["warnings"].append(problem)
