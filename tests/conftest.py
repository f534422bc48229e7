"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

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
