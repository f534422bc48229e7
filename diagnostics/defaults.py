"""Settings that more than one command line or library takes: each default and range once.

A setting here is a :class:`Bounded`: its default and the values a user may ask for.
Command lines take their defaults from it (help texts say ``%(default)s``) and check a
value with :meth:`Bounded.problem`, which is the one line of a usage error; libraries
default to the same value and refuse what the command lines refuse. The sampling interval
lives here because diagnostics, loadtest and bench all take it; the load's settings
(users, rate, duration, the zombie cap...) are loadtest's own, in loadtest/defaults.py.

Standard library only and importing nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class Bounded(Generic[N]):
    """A setting's default and the closed range ``low``..``high`` (no ``high``: no upper
    bound) a user may give it."""

    default: N
    low: N
    high: N | None = None
    unit: str = ""
    """What the value counts, for the usage error ("seconds")."""
    why: str = ""
    """Why the range is what it is, said after it in the usage error."""

    def problem(self, flag: str, value: float) -> str | None:
        """Why ``value`` is out of range, as one line naming ``flag``; None if it is in.

        NaN is out of every range.
        """
        if self.low <= value and (self.high is None or value <= self.high):
            return None
        unit = f" {self.unit}" if self.unit else ""
        why = f": {self.why}" if self.why else ""
        if self.high is not None:
            return f"{flag} must be {_said(self.low)} to {_said(self.high)}{unit}{why}"
        if self.low == 0:
            return f"{flag} must not be negative{why}"
        return f"{flag} must be at least {_said(self.low)}{unit}{why}"


def _said(value: float) -> str:
    """A bound as a flag takes it: 1000000 (not 1e+06), 0.005."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


INTERVAL = Bounded(0.05, 0.005, 10.0, "seconds")
"""Mean seconds between two samples (the sampler's times are random; 20 a second by
default). Below 5 ms the sampler's own cost would be a large part of what it watches."""
