"""Fixtures shared by the test modules."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.server_helpers import SERVER, ServerProcess


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start real servers on free ports; whatever the test does, end them all."""
    started: list[ServerProcess] = []

    def start(
        *args: str, prefix: Sequence[str] = (), launcher: Sequence[str] = SERVER
    ) -> ServerProcess:
        server = ServerProcess(args, prefix=prefix, launcher=launcher)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 128 KiB tmpfs: room for a run's records and a few seconds of fast samples, not
    for its report (root; skipped where no tmpfs can be mounted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)
