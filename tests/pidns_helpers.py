"""Programs run as PID 1 of a PID namespace (loadtest.pidns), for the tests that need one.

A test asks :func:`need` first: it skips, with the kernel's own reason, where no PID
namespace can be made (not root, a container without CAP_SYS_ADMIN) or the init is
not installed. What a program inside wants to tell the test it prints, one line at a
time, to its log; :func:`said` waits for those lines.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from diagnostics.errors import NoSuchProcess
from diagnostics.proctable import read_stat, task_children
from loadtest import pidns
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _unavailable(init: pidns.Init) -> str | None:
    return pidns.unavailable(init)


def need(init: pidns.Init = "none") -> None:
    """Skip the test, saying why, where a command cannot run as PID 1 behind ``init``."""
    reason = _unavailable(init)
    if reason is not None:
        pytest.skip(f"no PID namespace with init {init}: {reason}")


@contextmanager
def running(
    program: str, *args: str, init: pidns.Init = "none", log: Path
) -> Iterator[pidns.Pid1Process]:
    """``python -c program args`` as PID 1 of a new namespace (or under ``init``), stopped
    (and the whole namespace with it) however the test ends."""
    need(init)
    command: Sequence[str] = [sys.executable, "-c", program, *args]
    with pidns.start_pid1("pid1", command, log, ROOT, init=init) as namespace:
        yield namespace


def said(log: Path, lines: int, timeout: float = 30.0) -> list[str]:
    """The first ``lines`` lines the program printed, once it has printed them."""

    def enough() -> bool:
        return len(_lines(log)) >= lines

    wait_until(enough, what=f"{lines} line(s) in {log.name}", timeout=timeout)
    return _lines(log)[:lines]


def _lines(log: Path) -> list[str]:
    text = log.read_text(errors="replace")
    return [line for line in text.splitlines() if not re.match(r"\[dumb-init\]", line)]


def zombie_children(pid: int) -> list[int]:
    """The zombie children of ``pid`` now; one reaped between the list and its stat is not one."""
    zombies = []
    for child in task_children(pid):
        try:
            if read_stat(child).zombie:
                zombies.append(child)
        except NoSuchProcess:
            continue
    return zombies
