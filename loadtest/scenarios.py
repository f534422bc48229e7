"""The experiments a run can hold, and how the command line picks them."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    strategy: str | None
    """The server's --reaper; None when the server is not ours (--server-cmd)."""
    leak_client_fd: bool = False
    caption: str = ""
    server_cmd: str | None = None
    """The command of a server that is not ours, with {port} where the port goes."""

    def server_args(self) -> list[str]:
        args = ["--reaper", self.strategy] if self.strategy else []
        return [*args, "--leak-client-fd"] if self.leak_client_fd else args


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("reaper-loop", "loop", caption="SIGCHLD handler loops waitpid until 0"),
        Scenario("no-reaper", "none", caption="the parent never calls waitpid"),
        Scenario("reaper-single", "single", caption="one waitpid per signal; signals coalesce"),
        Scenario("reaper-ignore", "ignore", caption="SIGCHLD ignored: the kernel reaps"),
        Scenario("reaper-wakeup", "wakeup", caption="wakeup fd; the main loop reaps"),
        Scenario("fd-leak", "loop", leak_client_fd=True, caption="parent keeps client sockets"),
        Scenario("external", None, caption="a server given by --server-cmd"),
    )
}

STRATEGIES = sorted({s.strategy for s in SCENARIOS.values() if s.strategy})
DEFAULT = ("reaper-loop", "no-reaper")
EVERY_STRATEGY = (
    "reaper-loop",
    "no-reaper",
    "reaper-single",
    "reaper-ignore",
    "reaper-wakeup",
    "fd-leak",
)


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


def for_strategy(strategy: str) -> str:
    """The scenario that runs our server with ``strategy``."""
    return "no-reaper" if strategy == "none" else f"reaper-{strategy}"


def select(
    names: list[str] | None, strategy: str | None, every: bool, server_cmds: list[str]
) -> list[Scenario]:
    """Resolve the scenario flags to a list; ValueError with a one-line reason if they clash."""
    if server_cmds:
        if names or strategy or every:
            raise ValueError("--server-cmd runs only the servers it names")
        return external(server_cmds)
    if every:
        chosen: tuple[str, ...] | list[str] = EVERY_STRATEGY
    elif strategy:
        chosen = [for_strategy(strategy)]
    else:
        chosen = names or DEFAULT
    unknown = [name for name in chosen if name not in SCENARIOS or name == "external"]
    if unknown:
        known = ", ".join(EVERY_STRATEGY)
        raise ValueError(f"unknown scenario {unknown[0]!r} (known: {known})")
    return [SCENARIOS[name] for name in dict.fromkeys(chosen)]
