"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from tests.server_helpers import (
    ServerProcess,
    reap_adopted,
    set_child_subreaper,
    zombie_children_of_self,
)


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start real servers on free ports; whatever the test does, end them all."""
    started: list[ServerProcess] = []

    def start(*args: str, prefix: Sequence[str] = ()) -> ServerProcess:
        server = ServerProcess(args, prefix=prefix)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture(scope="session", autouse=True)
def _adopt_orphans() -> None:
    """Orphans of the processes tests start come to pytest, not to PID 1.

    A server that exits leaves its zombies (and a killed one its children) to
    its nearest subreaper; making pytest that subreaper lets every test reap
    what it made instead of trusting the machine's init to do it.
    """
    set_child_subreaper()


@pytest.fixture(autouse=True)
def _reap_what_the_test_left() -> Iterator[None]:
    yield
    reap_adopted(zombie_children_of_self())
