"""Scenario selection, in process: the scenarios follow server/reapers.py's registry."""

from __future__ import annotations

import pytest

from loadtest.scenarios import (
    CONTAINERS,
    DEFAULT,
    EVERY_SCENARIO,
    OURS,
    SCENARIOS,
    as_pid1,
    scenario_for,
    scenario_work_ms,
    select,
)
from reports.plots import PALETTE, SPARE_COLORS
from server.reapers import STRATEGIES


def names(chosen: list) -> list[str]:
    return [scenario.name for scenario in chosen]


def test_every_strategy_has_its_scenario_in_the_registry_order() -> None:
    assert EVERY_SCENARIO == (
        "reaper-loop",
        "no-reaper",
        "reaper-single",
        "reaper-ignore",
        "reaper-wakeup",
        "reaper-own",
        "fd-leak",
        "orphans",
        "listener-leak",
    )
    for name in STRATEGIES:
        assert SCENARIOS[scenario_for(name)].strategy == name
    assert [SCENARIOS[name].color_key for name in EVERY_SCENARIO] == list(range(9))


def test_scenario_json_carries_what_reports_need_from_the_registry() -> None:
    single = SCENARIOS["reaper-single"].described(0)
    assert single == {
        "leak_client_fd": False,
        "child_keeps_listener": False,
        "server_flags": ["--reaper", "single", "--work-ms", "0"],
        "reaps_all": False,
        "meaning": STRATEGIES["single"].meaning,
        "shortfall": "signals coalesced",
        "color_key": 2,
        "pid1": None,
    }
    assert SCENARIOS["reaper-ignore"].described(0)["reaps_all"] is True
    assert SCENARIOS["fd-leak"].described(0)["meaning"] == STRATEGIES["loop"].meaning
    assert SCENARIOS["fd-leak"].described(0)["leak_client_fd"] is True
    assert SCENARIOS["listener-leak"].described(0)["child_keeps_listener"] is True
    assert SCENARIOS["external"].described(0) == {
        "leak_client_fd": False,
        "child_keeps_listener": False,
        "server_flags": None,
        "reaps_all": None,
        "meaning": None,
        "shortfall": None,
        "color_key": None,
        "pid1": None,
    }


def test_server_args_name_the_strategy_the_faults_and_the_work() -> None:
    assert SCENARIOS["no-reaper"].server_args(0) == ["--reaper", "none", "--work-ms", "0"]
    assert SCENARIOS["fd-leak"].server_args(5)[2:] == ["--leak-client-fd", "--work-ms", "5"]
    assert SCENARIOS["orphans"].server_args(0)[2:3] == ["--orphans"]
    assert SCENARIOS["external"].server_args(0) == []


def test_listener_leak_runs_children_long_enough_to_be_seen_holding_the_socket() -> None:
    """Its own --work-ms is a least: a longer one asked for is kept, and the record says
    which the server ran with (run.json said 0 while its children lived 200 ms)."""
    leak = SCENARIOS["listener-leak"]
    assert leak.server_args(0) == [
        "--reaper", "loop", "--child-keeps-listener", "--work-ms", "200"
    ]  # fmt: skip
    assert leak.server_args(500)[-1] == "500"
    assert leak.described(0)["server_flags"] == leak.server_args(0)
    assert (leak.work_ms(0), SCENARIOS["reaper-loop"].work_ms(0)) == (200, 0)
    assert SCENARIOS["external"].work_ms(0) is None
    chosen = select(["reaper-loop", "listener-leak"], None, False, [])
    assert scenario_work_ms(chosen, 0) == {"scenario_work_ms": {"listener-leak": 200}}
    assert scenario_work_ms(chosen, 300) == {}


def test_only_listener_leak_stops_its_parent_to_show_the_held_port() -> None:
    shown = [s.name for s in OURS if s.shows_listener_aftermath]
    assert shown == ["listener-leak"]
    assert not as_pid1([SCENARIOS["listener-leak"]], "none")[0].shows_listener_aftermath


def test_selection_by_default_name_strategy_and_every() -> None:
    assert names(select(None, None, False, [])) == list(DEFAULT)
    assert names(select(["fd-leak", "fd-leak"], None, False, [])) == ["fd-leak"]
    assert names(select(None, "none", False, [])) == ["no-reaper"]
    assert names(select(None, None, True, [])) == list(EVERY_SCENARIO)


def test_external_servers_are_named_or_numbered() -> None:
    chosen = select(None, None, False, ["a {port}", "mine=b {port}", "c {port}"])
    assert names(chosen) == ["external", "mine", "external-2"]
    assert [s.server_cmd for s in chosen] == ["a {port}", "b {port}", "c {port}"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((["nope"], None, False, []), "unknown scenario 'nope'"),
        ((["external"], None, False, []), "unknown scenario 'external'"),
        ((None, "loop", False, ["x {port}"]), "--server-cmd runs only the servers it names"),
        ((None, None, False, ["fd-leak=x {port}"]), "is one of the built-in scenarios"),
        ((None, None, False, ["a=x {port}", "a=y {port}"]), "is given twice"),
    ],
)
def test_clashing_flags_are_one_line_errors(args: tuple, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as raised:
        select(*args)
    assert "\n" not in str(raised.value)


def test_containers_are_the_orphan_making_application_as_pid1_and_a_parent_not_waiting() -> None:
    chosen = select(None, None, False, [], containers=True)
    assert (
        names(chosen)
        == list(CONTAINERS)
        == [
            "pid1-no-init",
            "pid1-dumb-init",
            "pid1-tini",
            "pid1-tini-no-reaper",
        ]
    )
    assert [(s.pid1, s.init, s.strategy) for s in chosen] == [
        (True, "none", "own"),
        (True, "dumb-init", "own"),
        (True, "tini", "own"),
        (True, "tini", "none"),
    ]
    assert all("--orphans" in s.server_args(0) for s in chosen)
    assert SCENARIOS["pid1-tini"].described(0)["pid1"] == {"init": "tini"}
    # --all needs no root: it runs none of them; by name they can be chosen like any other.
    assert not set(CONTAINERS) & set(EVERY_SCENARIO)
    assert names(select(["pid1-tini", "reaper-loop"], None, False, [])) == [
        "pid1-tini",
        "reaper-loop",
    ]


def test_pid1_puts_every_chosen_server_in_a_namespace_behind_the_init() -> None:
    chosen = as_pid1(select(None, None, False, ["web=x {port}"]), "dumb-init")
    assert [(s.name, s.pid1, s.init, s.server_cmd) for s in chosen] == [
        ("web", True, "dumb-init", "x {port}")
    ]
    assert as_pid1(select(None, "loop", False, []), "none")[0].described(0)["pid1"] == {
        "init": "none"
    }
    with pytest.raises(ValueError, match="pid1-tini already runs its server as PID 1"):
        as_pid1(select(["reaper-loop", "pid1-tini"], None, False, []), "tini")


def test_every_scenario_of_ours_has_a_colour_of_its_own() -> None:
    keyed = PALETTE + SPARE_COLORS
    keys = [scenario.color_key for scenario in OURS]
    assert keys == list(range(len(OURS))) and len(OURS) <= len(keyed)
