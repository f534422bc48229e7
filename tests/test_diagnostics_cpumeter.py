"""CpuMeter: the CPU of a process tree, children included, from the kernel's tables."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from diagnostics.cpumeter import CpuMeter
from tests.waiting import wait_until


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_it_counts_this_process_cpu() -> None:
    meter = CpuMeter(os.getpid())
    meter.update()
    before = meter.cpu_seconds
    burn(0.1)
    meter.update()
    assert meter.cpu_seconds >= before + 0.05


def test_it_counts_a_child_that_works() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.process_time() + 30\n"
         "while time.process_time() < end: pass"]
    )  # fmt: skip
    try:
        meter = CpuMeter(os.getpid())

        def child_worked() -> bool:
            meter.update()
            return meter.cpu_seconds > time.process_time() + 0.2

        wait_until(child_worked, timeout=20, what="the child's CPU to be counted")
    finally:
        child.kill()
        child.wait()
