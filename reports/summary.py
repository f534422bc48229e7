"""The figures of a run, one dict per scenario: what summary.json holds and the tables show.

summary.json's keys are a contract other tools rely on (docs/design.md): keep them, add freely.
A figure that could not be measured is None (null), never 0, so "no zombies" and "not
measured" stay different things.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from diagnostics.contract import BY_LIVE, EVENT_FIGURES, NOT_OK, ScenarioRecord, Source, Status
from reports import exact, listener
from reports.checks import Check, scenario_checks
from reports.files import to_float
from reports.rundir import Run, Scenario
from reports.series import first_finite, last_finite, optional, optional_int, peak
from reports.verdicts import Evidence, verdict

REASONS_SHOWN = 3
"""How many failure reasons a warning names, most frequent first."""


def summarize(run: Run, plots: dict[str, str]) -> dict[str, Any]:
    """The whole summary; `plots` maps scenario name to its dashboard's file name."""
    return {
        "run": run_info(run),
        "scenarios": [scenario_summary(run, s, plots.get(s.name)) for s in run.scenarios],
    }


def run_info(run: Run) -> dict[str, Any]:
    """run.json's record, with id and kind always present and problems spelled out."""
    info = json_safe(run.record.to_json()) if run.recorded else {}
    info["id"] = run.id
    info["kind"] = run.kind
    warnings = list(run.notes)
    status = run.record.exit_status
    if run.recorded and status != Status.OK:
        warnings.append(f"run ended with status '{status}'")
    info["warnings"] = warnings
    return info


def scenario_summary(run: Run, scenario: Scenario, plot: str | None) -> dict[str, Any]:
    """One scenario's row: figures, verdict, cross-checks and everything worth a warning."""
    record = scenario.record
    samples = scenario.samples
    totals = scenario.totals
    final = scenario.final_sample

    def series(column: str) -> np.ndarray:
        return samples[column] if samples is not None else np.empty(0)

    def sampled(column: str, reduce: Callable[[np.ndarray], float]) -> int | None:
        return optional_int(reduce(samples[column])) if samples is not None else None

    def in_final(column: str) -> int | None:
        return optional_int(to_float(final.get(column)))

    data_ends_at = optional(scenario.since_start(record.data_ends_at))
    # Where the samples stop before the run did, the last row is not the final count.
    usable = data_ends_at is None
    final_zombies = _first_known(
        in_final("zombies"), sampled("zombies", last_finite) if usable else None
    )
    final_deeper = _first_known(
        in_final("descendant_zombies"),
        sampled("descendant_zombies", last_finite) if usable else None,
    )
    settled = record.settle or {}
    holders = [h for h in record.zombie_holders or [] if isinstance(h, dict)]
    requests = totals.requests if totals else None
    forked = scenario.counter("forked")
    interrupted_at = _load_seconds(record, record.interrupted_at)
    reaped = scenario.counter("reaped")
    refused_source = (record.sources or {}).get("refused_at_cap")
    evidence = Evidence(
        kind=run.kind,
        strategy=record.strategy,
        shortfall=record.shortfall,
        t=samples.t if samples is not None else np.empty(0),
        zombies=series("zombies"),
        fds=series("fds"),
        final_zombies=final_zombies,
        # Cut short, the counters are of the server's shutdown, after the interrupt.
        forked=None if interrupted_at is not None else forked,
        requests=requests,
        failures=totals.failures if totals else None,
        leak_client_fd=record.leak_client_fd is True,
        capped=record.capped is True,
        cap=optional_int(to_float(record.cap)),
        capped_at=optional(to_float(record.capped_at)),
        descendant_zombies=series("descendant_zombies"),
        final_descendant_zombies=final_deeper,
        holders=tuple(holders),
        shell_wrapper=record.shell_wrapper is True,
        alive=series("alive"),
        baseline_alive=optional_int(to_float((record.baseline_sample or {}).get("alive"))),
        reaped_child_faults=optional_int(to_float(record.reaped_child_faults)),
        sigchld_handled=_string_map(record.sigchld_handled),
        zombies_at_stop=optional_int(to_float(settled.get("zombies_at_stop"))),
        last_fall_s=optional(to_float(settled.get("last_fall_s"))),
        refused_at_cap=optional_int(to_float(record.refused_at_cap)),
        refused_by_kernel=refused_source == Source.CGROUP,
        data_ends_at=data_ends_at,
        interrupted_at=interrupted_at,
        pid1=record.pid1,
        reaped=reaped,
        events=exact.evidence(scenario),
        users=optional_int(to_float((record.asked or {}).get("users"))),
        server_ended=_ended_by_itself(record),
        pids_limit=hit if (hit := record.cap_hit or {}).get("by") == BY_LIVE else None,
    )
    checks = scenario_checks(record)
    row = {
        "name": scenario.name,
        "strategy": record.strategy,
        "pid1": record.pid1,
        "status": record.status if scenario.recorded else None,
        "requests": requests,
        "failures": totals.failures if totals else None,
        "rps": _rounded(totals.rps if totals else None, 1),
        "p50_ms": totals.p50_ms if totals else None,
        "p95_ms": totals.p95_ms if totals else None,
        "p99_ms": totals.p99_ms if totals else None,
        "peak_zombies": _max_known(sampled("zombies", peak), final_zombies),
        "final_zombies": final_zombies,
        "peak_descendant_zombies": _max_known(sampled("descendant_zombies", peak), final_deeper),
        "final_descendant_zombies": final_deeper,
        "zombie_holders": list(evidence.holders),
        "peak_alive": _max_known(sampled("alive", peak), in_final("alive")),
        "fds_start": sampled("fds", first_finite),
        "fds_end": _first_known(in_final("fds"), sampled("fds", last_finite)),
        "peak_rss_bytes": sampled("rss_bytes", peak),
        "forked": forked,
        "reaped": reaped,
        "accepted": scenario.counter("accepted"),
        "rejected": scenario.counter("rejected"),
        "fork_failures": scenario.counter("fork_failures"),
        "failure_reasons": [
            {"reason": reason, "count": count} for reason, count in scenario.failure_reasons
        ],
        "capped": record.capped if scenario.recorded else None,
        "cap": evidence.cap,
        "capped_at": evidence.capped_at,
        "refused_at_cap": evidence.refused_at_cap,
        "cap_hit": record.cap_hit,
        "sources": {},
        "stops": record.stops,
        "left_running": record.left_running,
        "lost_workers": record.lost_workers,
        "duration_s": _rounded(_duration(scenario), 1),
        "workers": _workers(record.workers),
        "verdict": verdict(evidence),
        "checks": [check.to_json() for check in checks],
        "warnings": _warnings(scenario, checks),
        "missing": scenario.missing,
        "files": scenario.present,
        "plot": plot,
        "listener_aftermath": listener.section(record, plot),
        "zombies_from": exact.ZOMBIES_FROM_SAMPLES if samples is not None else None,
        "zombie_lifetime": None,
        "zombies_before": None,
        "pool": None,
        "events": None,
    }
    # The event record's exact counts stand in for the sampled ones, key for key.
    row.update(exact.summary_figures(scenario) or {})
    row["sources"] = _sources(scenario, row["zombies_from"] == exact.ZOMBIES_FROM_EVENTS)
    return row


def _sources(scenario: Scenario, from_events: bool) -> dict[str, str]:
    """Where each figure of the row comes from: as the harness named them, the requests as
    read here, and for the children, zombies and reaps the source the report itself used:
    the event record, or the samples and the server's counters where it could not use one
    (none, an older writer's, events.csv gone or unreadable)."""
    record = scenario.record
    sources = {**(record.sources or {}), **_requests_source(scenario)}
    if from_events:
        return {**sources, **dict.fromkeys(EVENT_FIGURES, Source.EVENTS)}
    counted = Source.SERVER if record.server_counters is not None else None
    fallback = {"zombies": Source.SAMPLED, "alive": Source.SAMPLED}
    for figure in EVENT_FIGURES:
        if sources.get(figure) == Source.EVENTS:
            instead = fallback.get(figure, counted)
            if instead is None:
                del sources[figure]
            else:
                sources[figure] = instead
    return sources


def _ended_by_itself(record: ScenarioRecord) -> str | None:
    """How the server ended, when it ended by itself before the final sample was taken."""
    stop = (record.stops or {}).get("server")
    if record.final_sample is not None or not isinstance(stop, dict) or stop.get("signals"):
        return None
    return str(stop.get("ended")) if stop.get("ended") else None


def _load_seconds(record: ScenarioRecord, at: float | None) -> float | None:
    """Seconds into the load (into the scenario, before the load began) of a unix time."""
    begin = record.load_started if record.load_started is not None else record.started
    return optional(to_float(at) - to_float(begin))


def _requests_source(scenario: Scenario) -> dict[str, str]:
    """Where summary.json's requests and failures come from, as read here."""
    source = scenario.totals_source
    return {} if source is None else {"requests": source, "failures": source}


def _workers(value: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The Locust workers of a distributed run (id, requests, failures), None for a local one."""
    if value is None or not isinstance(value.get("workers"), list):
        return None
    return [w for w in value["workers"] if isinstance(w, dict)]


def _string_map(value: dict[str, Any] | None) -> dict[str, str] | None:
    """A JSON object of strings as written, None when absent."""
    if value is None:
        return None
    return {str(key): str(item) for key, item in value.items()}


def _first_known(*values: int | None) -> int | None:
    return next((value for value in values if value is not None), None)


def _max_known(*values: int | None) -> int | None:
    known = [value for value in values if value is not None]
    return max(known) if known else None


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _duration(scenario: Scenario) -> float | None:
    """Seconds of load when the harness recorded them, else of the scenario, else of sampling."""
    record = scenario.record
    for begin, end in ((record.load_started, record.load_ended), (record.started, record.ended)):
        span = to_float(end) - to_float(begin)
        if not math.isnan(span):
            return span
    if scenario.samples is not None and len(scenario.samples) > 1:
        return float(scenario.samples.t[-1] - scenario.samples.t[0])
    return None


def _warnings(scenario: Scenario, checks: list[Check]) -> list[str]:
    """Everything a reader must not miss: failed checks, the harness's own words, gaps."""
    warnings = [check.text for check in checks if not check.ok]
    status = scenario.record.status
    if status in NOT_OK:
        warnings.append(f"scenario ended with status '{status}'")
    warnings.extend(f"error: {entry}" for entry in scenario.record.errors)
    warnings.extend(str(entry) for entry in scenario.record.warnings)
    if scenario.failure_reasons:
        shown = scenario.failure_reasons[:REASONS_SHOWN]
        text = "; ".join(f"{reason} ({count})" for reason, count in shown)
        warnings.append(f"failed requests, most frequent first: {text}")
    if scenario.missing:
        warnings.append("missing: " + ", ".join(scenario.missing))
    warnings.extend(scenario.notes)
    return warnings


def json_safe(value: Any) -> Any:
    """A copy that json.dumps(allow_nan=False) accepts: NaN/inf become null, odd types text."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n"
