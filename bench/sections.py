"""The bench's sections, in the order they run: each fills its part of the JSON record.

Every section has the same signature, so a new one is a module with a ``measure`` and a
line here; the command line, the run loop and the record follow this list.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import event_cost, exporter_cost, headroom, observer, sampler_cost, throughput
from bench.loadgen import Locust, Wrk
from bench.settings import BenchSettings

Section = Callable[[BenchSettings, Wrk | Locust, Path, dict[str, Any]], None]
"""measure(settings, load generator, scratch folder, the section's part of the record)."""

SECTIONS: dict[str, Section] = {
    "throughput": throughput.measure,
    "sampler": sampler_cost.measure,
    "observer": observer.measure,
    "headroom": headroom.measure,
    "events": event_cost.measure,
    "exporter": exporter_cost.measure,
}
