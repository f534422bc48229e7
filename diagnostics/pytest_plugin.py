"""``pytest --child-leaks=warn|fail``: a test that leaves a child process behind is caught,
with the line that started it.

pytest has checks for leaked threads, references and environment, none for
processes; CPython's own runner does it internally (``reap_children()`` with
``--fail-env-changed``). Here, after each test, the pytest process's children
are compared with those it had when the test began: a child that is new and
still there is a leak, running or zombie. While the check is on, pytest is a
child subreaper (Linux), so a grandchild whose parent exited (a double fork, a
daemon, the children of a killed server) comes back to pytest and is caught
too, instead of vanishing into PID 1.

Where each child was started is recorded as it happens (diagnostics.spawns:
audit events, at-fork hooks, and wrappers of the two calls that return a PID
unannounced), so the report names the line of the test (or of the project's
code) that started it, and ``-vv`` prints the whole stack. The same record says
which test to count a child against (diagnostics.leaks): a thread that test A
left running and that starts a child during test B does not fail B; the child,
if it stays, is reported at the end of the run, naming A and the thread. So are
children started between tests (a session fixture's that it never ended).
Under pytest-xdist each worker checks its own children and hands its end-of-run
report to the controller (``workeroutput``), which prints them all.

A zombie is reported with the exit status ``waitid(WNOWAIT)`` reads, which
leaves it in place. ``--child-leaks-reap`` says what happens next:

- ``unowned`` (default): reaped if nothing in the process owns it; one a
  ``subprocess.Popen`` or a ``multiprocessing`` process or pool still refers to
  is left to that owner (diagnostics.owners): reaping it behind its back makes
  multiprocessing SIGTERM the PID later, when it may name another process;
- ``all``: owned zombies are reaped too, through their owner (``Popen.poll``,
  ``Process.exitcode``), so the table ends clean and the owner knows;
- ``none``: nothing is reaped; the evidence stays for other tools.

A process found running is left running: the test started it, not the checker.
``--child-leaks-fds`` adds, for each running leak, the sockets and pipes of the
pytest process it holds beyond 0-2 (diagnostics.inherited).

"The test" is the test function with its function-scoped fixtures: the check
is an autouse fixture, which pytest sets up after every broader-scoped fixture
and tears down after every other function-scoped one. A server that a session
or module fixture keeps is therefore not a test's leak (nor the run's, once the
fixture ends it); a fixture that does not end what it started is.

Registered through the ``pytest11`` entry point, it does nothing until asked:
``--child-leaks=warn`` warns (ChildLeakWarning), ``--child-leaks=fail`` makes
the test error at teardown (and the run fail for the run's leaks).
``@pytest.mark.child_leaks("off"|"warn"|"fail")`` sets the mode of one test (or
of a module, through ``pytestmark``) whatever the option says. Off, it installs
nothing and imports nothing; the hooks and diagnostics.leaks come with the first
checked test.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # importing them for real would load psutil into every pytest session
    from diagnostics.leaks import ChildWatch, Leak
    from diagnostics.spawns import Frame

MODES = ("off", "warn", "fail")
OPTION = "--child-leaks"
REAP_OPTION = "--child-leaks-reap"
FDS_OPTION = "--child-leaks-fds"
REAP_CHOICES = ("unowned", "all", "none")
"""diagnostics.leaks.ReapPolicy, spelt here so that pytest need not import it (nor psutil)."""
MARKER = "child_leaks"
WATCH = pytest.StashKey["ChildWatch"]()  # set once pytest is a subreaper and records spawns
RUN_LEAKS = pytest.StashKey[list[str]]()  # the run's leaks, this process's and its workers'
WORKER_OUTPUT = "child_leaks"  # the key of a worker's end-of-run report in xdist's workeroutput


class ChildLeakWarning(pytest.PytestWarning):
    """A test left a child process behind (``--child-leaks=warn``)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("child-leaks", "leaked child processes (reaperlab)")
    group.addoption(
        OPTION,
        choices=MODES,
        default="off",
        help="after each test, look for child processes it left running or as zombies: "
        "warn, or fail the test (default: off)",
    )
    group.addoption(
        REAP_OPTION,
        choices=REAP_CHOICES,
        default="unowned",
        help="after reporting a zombie: reap it if nothing in the process owns it (unowned, "
        "the default), reap owned ones too through their owner (all), or leave it (none)",
    )
    group.addoption(
        FDS_OPTION,
        action="store_true",
        help="also report the sockets and pipes of the pytest process a leaked child holds",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(mode): check this test for leaked child processes: off, warn or fail "
        f"(overrides {OPTION})",
    )
    if config.getoption("child_leaks") != "off" and not _xdist_controller(config):
        _start(config)


def _xdist_controller(config: pytest.Config) -> bool:
    """The xdist process that runs no test: its workers check theirs."""
    return config.getoption("dist", "no") != "no" and not hasattr(config, "workerinput")


def _start(config: pytest.Config) -> ChildWatch:
    """Become the child subreaper (or warn that orphans will be missed) and record
    spawns; once per session."""
    if WATCH not in config.stash:
        from diagnostics.leaks import ChildWatch
        from diagnostics.spawns import TRACKER
        from diagnostics.subreaper import become_subreaper

        if not become_subreaper():
            warnings.warn(
                ChildLeakWarning(
                    f"{OPTION}: pytest cannot be a child subreaper here (Linux only), "
                    "so a child that double-forks away will not be seen"
                ),
                stacklevel=2,
            )
        fds = config.getoption("child_leaks_fds")
        TRACKER.activate()
        TRACKER.note_fds = fds
        TRACKER.full_stacks = config.getoption("verbose") >= 2
        config.add_cleanup(TRACKER.deactivate)
        config.stash[WATCH] = ChildWatch(TRACKER, config.getoption("child_leaks_reap"), fds)
    return config.stash[WATCH]


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
    if mode == "off" and WATCH not in request.config.stash:
        yield
        return
    watch = _start(request.config)
    test = getattr(request.node, "function", None)
    window = watch.open(request.node.nodeid, getattr(test, "__code__", None))
    yield
    leaks = watch.close(window, checked=mode != "off")
    if not leaks:
        return
    text = "\n".join(
        [f"{request.node.nodeid} left {len(leaks)} child process(es) behind:"]
        + _describe(request.config, leaks, test=_test_function(request.node))
    )
    if mode == "fail":
        pytest.fail(text, pytrace=False)
    path, line, _name = request.node.reportinfo()
    warnings.warn_explicit(ChildLeakWarning(text), None, str(path), (line or 0) + 1)


def _describe(config: pytest.Config, leaks: list[Leak], test: Frame | None) -> list[str]:
    from diagnostics.leakreport import describe

    verbose = config.getoption("verbose") >= 2
    return [
        f"  {line}"
        for leak in leaks
        for line in describe(leak, root=config.rootpath, test=test, verbose=verbose)
    ]


def _test_function(item: pytest.Item) -> Frame | None:
    """(file, line, qualified name) of the test's function, as spawn stacks name frames."""
    code = getattr(getattr(item, "function", None), "__code__", None)
    if code is None:
        return None
    return code.co_filename, code.co_firstlineno, code.co_qualname


@pytest.hookimpl(trylast=True)  # after pytest's own, which tears down what fixtures are left
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run's leaks: every child left that no test was charged with."""
    config = session.config
    if config.getoption("child_leaks") == "off":
        return
    if WATCH in config.stash:
        leaks = config.stash[WATCH].finish()
        blocks = ["\n".join(_describe(config, [leak], test=None)) for leak in leaks]
        if hasattr(config, "workerinput"):
            config.workeroutput[WORKER_OUTPUT] = blocks  # type: ignore[attr-defined]
            return
        config.stash.setdefault(RUN_LEAKS, []).extend(blocks)
    failing = config.stash.get(RUN_LEAKS, []) and config.getoption("child_leaks") == "fail"
    if failing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """An xdist worker is done: keep its end-of-run report for the controller's summary."""
    blocks = (getattr(node, "workeroutput", None) or {}).get(WORKER_OUTPUT, [])
    if blocks:
        worker = node.gateway.id  # type: ignore[attr-defined]
        config: pytest.Config = node.config  # type: ignore[attr-defined]
        config.stash.setdefault(RUN_LEAKS, []).extend(
            f"  [{worker}] {block.lstrip()}" for block in blocks
        )


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    blocks = config.stash.get(RUN_LEAKS, [])
    if not blocks:
        return
    fail = config.getoption("child_leaks") == "fail"
    terminalreporter.section(
        "child processes left behind by the test run", sep="=", red=fail, yellow=not fail
    )
    terminalreporter.line(
        f"{len(blocks)} child process(es) that no test was charged with are still here at the "
        "end of the run" + (" (the run fails: --child-leaks=fail):" if fail else ":")
    )
    for block in blocks:
        terminalreporter.line(block)
    noun = "leaked child" if len(blocks) == 1 else "leaked children"
    terminalreporter.stats.setdefault(noun, []).extend(blocks)
