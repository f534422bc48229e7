"""CPU seconds of a whole process tree, read from the kernel's tables as the sampler reads them."""

from __future__ import annotations

from diagnostics.errors import DiagnosticsError
from diagnostics.proctable import open_table


class CpuMeter:
    """CPU used by a process tree (Locust's master and workers), so a saturated load
    generator is noticed.

    The tree is walked through the kernel's children lists (diagnostics.proctable),
    not psutil's ``children(recursive=True)``, which reads every process on the
    machine: with the 2,000 zombies of a no-reaper run that was 39 ms of the
    harness's CPU at every tick, taken from the server being measured.
    """

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._seen: dict[int, float] = {}

    def update(self) -> None:
        table = open_table()
        pending = [self._pid]
        while pending:
            pid = pending.pop()
            try:
                cpu = table.stat(pid).cpu_seconds
                pending.extend(table.children(pid))
            except DiagnosticsError:
                continue
            if cpu is not None:
                self._seen[pid] = cpu

    @property
    def cpu_seconds(self) -> float:
        return sum(self._seen.values())
