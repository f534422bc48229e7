"""The experiments a run can hold, and how the command line picks them."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TypedDict

from server.reapers import STRATEGIES as STRATEGY_CLASSES

LEAK_CLIENT_FD = "--leak-client-fd"
"""Our server's fault flag: the parent never closes its copy of a client socket."""


class Described(TypedDict):
    """The fields of scenario.json that :meth:`Scenario.described` fills (ScenarioRecord's)."""

    leak_client_fd: bool
    reaps_all: bool | None
    meaning: str | None
    shortfall: str | None
    color_key: int | None


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

    def server_args(self) -> list[str]:
        return ["--reaper", self.strategy, *self.server_flags] if self.strategy else []

    @property
    def leak_client_fd(self) -> bool:
        """Whether our server is told to leak client sockets: reports then expect fds to grow."""
        return LEAK_CLIENT_FD in self.server_flags

    def described(self) -> Described:
        """What reports need to know about the scenario, for scenario.json: reports read it
        from there and keep no list of strategies or faults of their own."""
        reaper = STRATEGY_CLASSES.get(self.strategy or "")
        return {
            "leak_client_fd": self.leak_client_fd,
            "reaps_all": None if reaper is None else reaper.reaps_all,
            "meaning": None if reaper is None else reaper.meaning,
            "shortfall": None if reaper is None else reaper.shortfall,
            "color_key": self.color_key,
        }


def scenario_for(strategy: str) -> str:
    """The name of the scenario that runs our server with ``strategy``: the leak is no-reaper."""
    return f"reaper-{strategy}" if STRATEGY_CLASSES[strategy].reaps else "no-reaper"


OURS: tuple[Scenario, ...] = tuple(
    replace(scenario, color_key=key)
    for key, scenario in enumerate(
        (
            *(Scenario(scenario_for(name), name) for name in STRATEGY_CLASSES),
            Scenario("fd-leak", "loop", server_flags=(LEAK_CLIENT_FD,)),
            Scenario("orphans", "loop", server_flags=("--orphans",)),
            Scenario("listener-leak", "loop", ("--child-keeps-listener", "--work-ms", "200")),
        )
    )
)
"""Our server's scenarios: one per strategy of server/reapers.py, then the faults. A new
scenario is one line here (and its flag in server/__main__.py if the server lacks it)."""
SCENARIOS: dict[str, Scenario] = {s.name: s for s in (*OURS, Scenario("external", None))}
STRATEGIES = sorted(STRATEGY_CLASSES)
DEFAULT = ("reaper-loop", "no-reaper")
EVERY_SCENARIO = tuple(s.name for s in OURS)


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
    names: list[str] | None, strategy: str | None, every: bool, server_cmds: list[str]
) -> list[Scenario]:
    """Resolve the scenario flags to a list; ValueError with a one-line reason if they clash."""
    if server_cmds:
        if names or strategy or every:
            raise ValueError("--server-cmd runs only the servers it names")
        return external(server_cmds)
    if every:
        chosen: tuple[str, ...] | list[str] = EVERY_SCENARIO
    elif strategy:
        chosen = [scenario_for(strategy)]
    else:
        chosen = names or DEFAULT
    unknown = [name for name in chosen if name not in SCENARIOS or name == "external"]
    if unknown:
        known = ", ".join(EVERY_SCENARIO)
        raise ValueError(f"unknown scenario {unknown[0]!r} (known: {known})")
    return [SCENARIOS[name] for name in dict.fromkeys(chosen)]
