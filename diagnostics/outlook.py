"""How close a parent's tree is to running out of PIDs, in one line: the doctor's answer.

Every zombie holds a PID until it is reaped, so a leak ends when the first limit a fork
meets is reached (diagnostics.limits: a pids cgroup up the hierarchy, pid_max,
threads-max, RLIMIT_NPROC). Each of those counts the parent's tasks, so the parent's
zombie growth brings every one of them nearer at the same pace, and the first reached is
the one with the least room left. The pace is the doctor's growth over its watch, two
samples apart: a sampled figure, and the sentence says over how long it was taken; the
other tasks counted against the limit are assumed to stay as they are.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from diagnostics import limits
from diagnostics.limits import Limit, Limits


@dataclass(slots=True)
class Shared:
    """What every parent's limits share, read once per doctor run (``--all`` asks for many)."""

    host: Limits | None = None
    hierarchy: limits.Hierarchy | None = None
    _tasks: Counter[int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.host = self.host or limits.host_limits()
        self.hierarchy = self.hierarchy or limits.pids_hierarchy()

    def tasks(self) -> Counter[int]:
        """Tasks per user, counted once (RLIMIT_NPROC needs it only for non-root users)."""
        if self._tasks is None:
            self._tasks = limits.tasks_by_user()
        return self._tasks


@dataclass(frozen=True, slots=True)
class Outlook:
    """The limit a parent's tree reaches first, and when, at its zombies' growth."""

    limit: Limit
    rate_per_s: float | None
    """The parent's zombie growth over the watch (sampled); None without a watch."""
    watch_s: float

    @property
    def seconds_left(self) -> float | None:
        """None without a rate; infinity when the zombies are not growing."""
        return None if self.rate_per_s is None else self.limit.seconds_left(self.rate_per_s)

    def to_json(self) -> dict[str, Any]:
        left = self.seconds_left
        return {
            "kind": self.limit.kind,
            "value": self.limit.value,
            "used": self.limit.used,
            "scope": self.limit.scope,
            "source": self.limit.source,
            "rate_per_s": self.rate_per_s,
            "seconds_left": None if left is None or left == float("inf") else round(left, 1),
        }

    def sentence(self) -> str:
        limit = self.limit
        head = (
            f"the tightest is {limit.kind} {limit.value:,} of {limit.scope}:"
            f" {limit.used:,} used, {limit.headroom:,} left"
        )
        left = self.seconds_left
        if left is None:
            return f"{head} (watch with --watch S for the time to reach it)"
        if left == float("inf"):
            return f"{head}; the zombies did not grow over {self.watch_s:g} s"
        pace = f"{self.rate_per_s:+,.1f} zombies/s (sampled over {self.watch_s:g} s)"
        return f"{head}; at {pace} it is reached in {duration(left)}"


def outlook(pid: int, rate_per_s: float | None, watch_s: float, shared: Shared) -> Outlook | None:
    """The outlook of ``pid``'s tree; None where its limits cannot be read (gone, denied)."""
    try:
        found = limits.process_limits(pid, shared.host, shared.hierarchy, shared.tasks)
    except OSError:
        return None
    return Outlook(found.tightest(), rate_per_s, watch_s)


def duration(seconds: float) -> str:
    """Seconds as a person reads a wait: 7.4 s, 12 min, 6.1 h, 3.2 d."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"
