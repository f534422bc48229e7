"""What one bench run measures, and how long it may take."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class BenchSettings:
    rounds: int
    seconds: int
    """Length of every load, in seconds."""
    connections: int
    zombies: tuple[int, ...]
    """Zombie levels of the sampler section."""
    sampler_rounds: int
    generator: str
    """``auto`` (wrk when installed), ``wrk`` or ``locust``."""
    sections: tuple[str, ...]
    out: Path
    json_only: bool
    quick: bool
