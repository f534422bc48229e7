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
    """Samples per zombie level of the sampler section, and scrapes of the exporter's."""
    exporter_processes: int
    """Processes on the machine while the exporter's scrape is measured."""
    generator: str
    """``auto`` (wrk when installed), ``wrk`` or ``locust``."""
    sections: tuple[str, ...]
    out: Path
    json_only: bool
    quick: bool
