"""The experiments a run can hold, and how the command line picks them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    strategy: str | None
    """The server's --reaper; None when the server is not ours (--server-cmd)."""
    leak_client_fd: bool = False
    caption: str = ""

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


def for_strategy(strategy: str) -> str:
    """The scenario that runs our server with ``strategy``."""
    return "no-reaper" if strategy == "none" else f"reaper-{strategy}"


def select(
    names: list[str] | None, strategy: str | None, every: bool, external: bool
) -> list[Scenario]:
    """Resolve the scenario flags to a list; ValueError with a one-line reason if they clash."""
    if external:
        if names or strategy or every:
            raise ValueError("--server-cmd runs the 'external' scenario alone")
        return [SCENARIOS["external"]]
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
