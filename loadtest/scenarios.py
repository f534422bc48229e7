"""The experiments a run can hold, and how the command line picks them."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TypedDict

from loadtest.pidns import INITS, Init
from server.reapers import STRATEGIES as STRATEGY_CLASSES

LEAK_CLIENT_FD = "--leak-client-fd"
"""Our server's fault flag: the parent never closes its copy of a client socket."""
CHILD_KEEPS_LISTENER = "--child-keeps-listener"
"""Our server's fault flag: each child keeps the listening socket, so the port outlives the
parent while any child runs."""


class Described(TypedDict):
    """The fields of scenario.json that :meth:`Scenario.described` fills (ScenarioRecord's)."""

    leak_client_fd: bool
    child_keeps_listener: bool
    server_flags: list[str] | None
    reaps_all: bool | None
    meaning: str | None
    shortfall: str | None
    color_key: int | None
    pid1: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    strategy: str | None
    """The server's --reaper; None when the server is not ours (--server-cmd)."""
    server_flags: tuple[str, ...] = ()
    """More flags for our server: a scenario that needs a new one names it here."""
    server_cmd: str | None = None
    """The command of a server that is not ours, with {port} where the port goes."""
    color_key: int | None = None
    """The scenario's place among ours: reports colour it by this, so it keeps its colour."""
    pid1: bool = False
    """The server runs as PID 1 of a new PID namespace, as in a container (loadtest/pidns.py),
    or under ``init`` as that PID 1."""
    init: Init = "none"
    """With ``pid1``, the init in front of the server (as ``docker run --init``), or none."""
    min_work_ms: int = 0
    """The least ``--work-ms`` our server runs with here: a fault seen only while children
    run needs children that live long enough to be seen. A longer ``--work-ms`` is kept."""

    def work_ms(self, asked: int) -> int | None:
        """The ``--work-ms`` our server runs with when the run asks for ``asked``; None for a
        server not ours."""
        return max(asked, self.min_work_ms) if self.strategy else None

    def server_args(self, work_ms: int) -> list[str]:
        """Our server's flags in effect when the run asks for ``work_ms`` (none for a server
        not ours): scenario.json keeps them as they were given."""
        effective = self.work_ms(work_ms)
        if self.strategy is None or effective is None:
            return []
        return ["--reaper", self.strategy, *self.server_flags, "--work-ms", str(effective)]

    @property
    def leak_client_fd(self) -> bool:
        """Whether our server is told to leak client sockets: reports then expect fds to grow."""
        return LEAK_CLIENT_FD in self.server_flags

    @property
    def child_keeps_listener(self) -> bool:
        """Whether our server's children are told to keep the listening socket."""
        return CHILD_KEEPS_LISTENER in self.server_flags

    @property
    def shows_listener_aftermath(self) -> bool:
        """Whether the harness stops the parent alone after the load and shows what its
        children do with the listening socket (loadtest/aftermath.py). Not as PID 1: killing
        a namespace's PID 1 kills every process in it."""
        return self.child_keeps_listener and not self.pid1

    def described(self, work_ms: int) -> Described:
        """What reports need to know about the scenario, for scenario.json, when the run asks
        for ``work_ms``: reports read it from there and keep no list of strategies or faults
        of their own."""
        reaper = STRATEGY_CLASSES.get(self.strategy or "")
        return {
            "leak_client_fd": self.leak_client_fd,
            "child_keeps_listener": self.child_keeps_listener,
            "server_flags": self.server_args(work_ms) or None,
            "reaps_all": None if reaper is None else reaper.reaps_all,
            "meaning": None if reaper is None else reaper.meaning,
            "shortfall": None if reaper is None else reaper.shortfall,
            "color_key": self.color_key,
            "pid1": {"init": self.init} if self.pid1 else None,
        }

    def as_pid1(self, init: Init) -> Scenario:
        """The same scenario with its server as PID 1 of a new PID namespace, behind ``init``."""
        return replace(self, pid1=True, init=init)


def scenario_for(strategy: str) -> str:
    """The name of the scenario that runs our server with ``strategy``: the leak is no-reaper."""
    return f"reaper-{strategy}" if STRATEGY_CLASSES[strategy].reaps else "no-reaper"


ORPHANS = "--orphans"
"""Our server's flag: each child leaves a grandchild that outlives it, an orphan."""
CONTAINER_APP = "own"
"""The strategy of an application in a container: it waits for the children it started,
by PID, and never for the orphans it is handed as PID 1 (server/reapers.py's OwnReaper)."""


def in_container(init: Init, strategy: str = CONTAINER_APP) -> Scenario:
    """The orphan-making server as PID 1 of a PID namespace, behind ``init``: pid1-no-init,
    pid1-tini, ...; with another strategy than an application's, its scenario's name follows
    (pid1-tini-no-reaper: a parent that never waits, which no init can help)."""
    name = "pid1-" + ("no-init" if init == "none" else init)
    if strategy != CONTAINER_APP:
        name += "-" + scenario_for(strategy)
    return Scenario(name, strategy, server_flags=(ORPHANS,), pid1=True, init=init)


OURS: tuple[Scenario, ...] = tuple(
    replace(scenario, color_key=key)
    for key, scenario in enumerate(
        (
            *(Scenario(scenario_for(name), name) for name in STRATEGY_CLASSES),
            Scenario("fd-leak", "loop", server_flags=(LEAK_CLIENT_FD,)),
            Scenario("orphans", "loop", server_flags=(ORPHANS,)),
            Scenario("listener-leak", "loop", (CHILD_KEEPS_LISTENER,), min_work_ms=200),
            *(in_container(init) for init in INITS),
            in_container("tini", "none"),
        )
    )
)
"""Our server's scenarios: one per strategy of server/reapers.py, then the faults, then the
containers'. A new scenario is one line here (and its flag in server/__main__.py if the
server lacks it)."""
SCENARIOS: dict[str, Scenario] = {s.name: s for s in (*OURS, Scenario("external", None))}
STRATEGIES = sorted(STRATEGY_CLASSES)
DEFAULT = ("reaper-loop", "no-reaper")
EVERY_SCENARIO = tuple(s.name for s in OURS if not s.pid1)
"""--all: every scenario that needs no PID namespace (no root)."""
FAULTS = tuple(s.name for s in OURS if s.server_flags and not s.pid1)
"""Our server run with a fault or habit of its own (a server flag), outside a container."""
CONTAINERS = tuple(s.name for s in OURS if s.pid1)
"""--containers: the orphan-making server as PID 1 with no init, under dumb-init and under
tini, and a parent that never waits under tini, side by side."""
KNOWN = (*EVERY_SCENARIO, *CONTAINERS)


def scenario_work_ms(chosen: list[Scenario], asked: int) -> dict[str, dict[str, int]]:
    """run.json's ``scenario_work_ms`` where a chosen scenario runs our server with another
    ``--work-ms`` than the run's ``work_ms`` (its ``min_work_ms``); nothing otherwise."""
    own = {s.name: ms for s in chosen if (ms := s.work_ms(asked)) is not None and ms != asked}
    return {"scenario_work_ms": own} if own else {}


EXTERNAL_NAME = re.compile(r"([a-z0-9-]+)=(.*)", re.DOTALL)


def external(specs: list[str]) -> list[Scenario]:
    """One scenario per --server-cmd "[NAME=]CMD ... {port}"; unnamed ones are external, -2, ...

    ValueError (one line) for a name given twice or one of our own scenarios' names.
    """
    chosen: list[Scenario] = []
    unnamed = 0
    for spec in specs:
        match = EXTERNAL_NAME.fullmatch(spec.strip())
        if match is not None:
            name, command = match.group(1), match.group(2).strip()
        else:
            unnamed += 1
            name, command = ("external" if unnamed == 1 else f"external-{unnamed}"), spec
        if name in SCENARIOS and name != "external":
            raise ValueError(f"--server-cmd name {name!r} is one of the built-in scenarios")
        if any(scenario.name == name for scenario in chosen):
            raise ValueError(f"--server-cmd name {name!r} is given twice")
        chosen.append(replace(SCENARIOS["external"], name=name, server_cmd=command))
    return chosen


def select(
    names: list[str] | None,
    strategy: str | None,
    every: bool,
    server_cmds: list[str],
    containers: bool = False,
) -> list[Scenario]:
    """Resolve the scenario flags to a list; ValueError with a one-line reason if they clash."""
    if server_cmds:
        if names or strategy or every or containers:
            raise ValueError("--server-cmd runs only the servers it names")
        return external(server_cmds)
    if every:
        chosen: tuple[str, ...] | list[str] = EVERY_SCENARIO
    elif containers:
        chosen = CONTAINERS
    elif strategy:
        chosen = [scenario_for(strategy)]
    else:
        chosen = names or DEFAULT
    unknown = [name for name in chosen if name not in SCENARIOS or name == "external"]
    if unknown:
        known = ", ".join(KNOWN)
        raise ValueError(f"unknown scenario {unknown[0]!r} (known: {known})")
    return [SCENARIOS[name] for name in dict.fromkeys(chosen)]


def as_pid1(chosen: list[Scenario], init: Init) -> list[Scenario]:
    """--pid1 [--init I]: every chosen scenario with its server as PID 1, behind ``init``.

    ValueError for a scenario that already says how it runs as PID 1 (--containers').
    """
    fixed = [scenario.name for scenario in chosen if scenario.pid1]
    if fixed:
        raise ValueError(f"--pid1: {fixed[0]} already runs its server as PID 1, with its own init")
    return [scenario.as_pid1(init) for scenario in chosen]
