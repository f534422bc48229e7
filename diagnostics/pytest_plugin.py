"""``pytest --child-leaks=warn|fail``: a test that leaves a child process behind is caught.

pytest has checks for leaked threads, references and environment, none for
processes; CPython's own runner does it internally (``reap_children()`` with
``--fail-env-changed``). Here, after each test, the pytest process's children
are compared with those it had when the test began: a child that is new and
still there is a leak, running or zombie. While the check is on, pytest is a
child subreaper (Linux), so a grandchild whose parent exited (a double fork, a
daemon, the children of a killed server) comes back to pytest and is caught
too, instead of vanishing into PID 1.

The report names each leaked process: PID, state, command line (for a zombie,
the ``[comm]`` the kernel keeps), and for a zombie its exit status, learnt by
reaping it, so no zombie outlives the test that made it. A process found
running is left running: the test started it, not the checker.

"The test" is the test function with its function-scoped fixtures: the check
is an autouse fixture, which pytest sets up after every broader-scoped fixture
and tears down after every other function-scoped one. A server that a session
or module fixture keeps is therefore not a leak; a fixture that does not end
what it started is.

Registered through the ``pytest11`` entry point, it does nothing until asked:
``--child-leaks=warn`` warns (ChildLeakWarning), ``--child-leaks=fail`` makes
the test error at teardown. ``@pytest.mark.child_leaks("off"|"warn"|"fail")``
sets the mode of one test (or of a module, through ``pytestmark``) whatever the
option says. diagnostics.leaks does the looking; it is imported only when a
test is checked.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # importing it for real would load psutil into every pytest session
    from diagnostics.leaks import LeakFinder

MODES = ("off", "warn", "fail")
OPTION = "--child-leaks"
MARKER = "child_leaks"
FINDER = pytest.StashKey["LeakFinder"]()  # set once pytest is a subreaper


class ChildLeakWarning(pytest.PytestWarning):
    """A test left a child process behind (``--child-leaks=warn``)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("child-leaks", "leaked child processes (reaperlab)").addoption(
        OPTION,
        choices=MODES,
        default="off",
        help="after each test, look for child processes it left running or as zombies: "
        "warn, or fail the test (default: off)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(mode): check this test for leaked child processes: off, warn or fail "
        f"(overrides {OPTION})",
    )
    if config.getoption("child_leaks") != "off":
        _start(config)


def _start(config: pytest.Config) -> LeakFinder:
    """Become the child subreaper (or warn that orphans will be missed); once per session."""
    if FINDER not in config.stash:
        from diagnostics.leaks import LeakFinder
        from diagnostics.subreaper import become_subreaper

        if not become_subreaper():
            warnings.warn(
                ChildLeakWarning(
                    f"{OPTION}: pytest cannot be a child subreaper here (Linux only), "
                    "so a child that double-forks away will not be seen"
                ),
                stacklevel=2,
            )
        config.stash[FINDER] = LeakFinder()
    return config.stash[FINDER]


def _mode(item: pytest.Item) -> str:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return item.config.getoption("child_leaks")
    mode = marker.args[0] if marker.args else "fail"
    if mode not in MODES:
        pytest.fail(f"@pytest.mark.{MARKER}({mode!r}): choose off, warn or fail", pytrace=False)
    return mode


@pytest.fixture(autouse=True)
def _reaperlab_child_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """The children before the test; after it (and its other fixtures), the new ones."""
    mode = _mode(request.node)
    if mode == "off":
        yield
        return
    finder = _start(request.config)
    before = finder.children()
    yield
    leaks = finder.since(before)
    if not leaks:
        return
    text = "\n".join(
        [f"{request.node.nodeid} left {len(leaks)} child process(es) behind:"]
        + [f"  {leak.describe()}" for leak in leaks]
    )
    if mode == "fail":
        pytest.fail(text, pytrace=False)
    path, line, _name = request.node.reportinfo()
    warnings.warn_explicit(ChildLeakWarning(text), None, str(path), (line or 0) + 1)
