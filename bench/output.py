"""The bench's results: one JSON file per run, and the table printed from it.

The table is drawn from the JSON record alone, so what is printed is what was
saved, and an interrupted run prints (and keeps) the sections it finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diagnostics.diskio import write_json

Record = dict[str, Any]


def write(path: Path, record: Record) -> None:
    write_json(path, record)


def render(record: Record) -> str:
    machine = record["machine"]
    settings = record["settings"]
    lines = [
        f"reaperlab bench {record['id']} (code {record.get('code') or 'unknown'}):"
        f" {machine['platform']}, {machine['cpus']} CPUs,"
        f" Python {machine['python']}, pid_max {machine['pid_max']}",
        f"load: {record['load_generator']}; {settings['rounds']} alternating round(s)"
        f" of {settings['seconds']} s",
    ]
    for key, draw in (
        ("throughput", _throughput),
        ("sampler", _sampler),
        ("observer", _observer),
        ("headroom", _headroom),
        ("events", _events),
        ("exporter", _exporter),
    ):
        if record.get(key):
            lines += ["", *draw(record[key], record)]
    lines += ["", f"status: {record['status']}"]
    return "\n".join(lines)


def _throughput(section: Record, record: Record) -> list[str]:
    connections = record["settings"]["connections"]
    lines = [
        f"1. Server throughput, {connections} concurrent connections (medians over rounds)",
        f"   {'server':42} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'parent RSS':>11}"
        f" {'errors':>7}",
    ]
    for row in section["contenders"].values():
        lines.append(
            f"   {row['label']:42} {_num(row['rps'], ',.0f'):>7} {_num(row['p50_ms'], '.1f'):>8}"
            f" {_num(row['p99_ms'], '.1f'):>8} {_mb(row['parent_rss_bytes']):>11}"
            f" {row['errors']:>7,}"
        )
    ceiling = section["fork_ceiling"]
    for label, rate in (
        ("fork+exit+wait of a small Python, serial", ceiling["serial_rate_per_s"]),
        (f"ceiling: the same, {ceiling['in_flight']} in flight", ceiling["rate_per_s"]),
    ):
        lines.append(
            f"   {label:42} {_num(rate, ',.0f'):>7} {'':>8} {'':>8} {_mb(ceiling['rss_bytes']):>11}"
        )
    if record["load_generator"].startswith("locust"):
        lines.append(
            "   (Locust checks each body: the other servers greet World whatever the name,"
            " so their errors are wrong answers, though full exchanges)"
        )
    for name, key in (
        ("ForkingTCPServer", "ours_vs_forking_tcp_server"),
        ("minimal", "ours_vs_minimal"),
    ):
        lines.append(f"   ours / {name}: {_target(section['targets'][key])}")
    return lines


def _sampler(section: Record, _record: Record) -> list[str]:
    lines = ["2. Sampler CPU per sample (ms) against psutil children()+status()"]
    if "skipped" in section:
        return [*lines, f"   skipped: {section['skipped']}"]
    lines.append(
        f"   {'zombies':>8} {'ours':>8} {'ours first':>11} {'psutil':>9} {'psutil/ours':>12}"
    )
    for row in section["levels"]:
        lines.append(
            f"   {row['zombies']:>8,} {row['ours_ms']:>8.3f} {row['ours_first_ms']:>11.3f}"
            f" {row['psutil_ms']:>9.3f} {row['ratio']:>11.0f}x"
        )
    if "within_budget" in section:
        verdict = "met" if section["within_budget"] else "MISSED"
        lines.append(f"   budget {section['budget_ms']:g} ms at the largest level: {verdict}")
    return lines


def _observer(section: Record, _record: Record) -> list[str]:
    hz = 1 / section["interval_s"]
    return [
        f"3. Observer effect: ours under load, sampler at {hz:g} Hz vs none",
        f"   without {_num(section['without_sampler']['rps'], ',.0f')} req/s,"
        f" with {_num(section['with_sampler']['rps'], ',.0f')} req/s"
        f" ({section['samples']} samples, median {_num(section['sample_cost_ms'], '.3f')}"
        " ms CPU each)",
        f"   with / without: {_target(section['target'])}",
    ]


def _headroom(section: Record, _record: Record) -> list[str]:
    lines = [
        f"4. Load-generator headroom: {section['users']} users/connections as fast as they can,"
        " against ours",
    ]
    for way, label in (("harness", "Locust as the harness runs it"), ("plain", "plain locust")):
        row = section[way]
        lines.append(
            f"   {label:30} {_num(row['rps'], ',.0f'):>7} req/s  Locust CPU"
            f" {_num(row['locust_cpu_cores'], '.2f')} cores"
            + ("  (client-bound)" if row["client_bound"] else "")
        )
    if "wrk" in section:
        lines.append(f"   {'wrk, same rounds':30} {_num(section['wrk']['rps'], ',.0f'):>7} req/s")
    lines.append(f"   harness / plain: {_target(section['harness_vs_plain'])}")
    share = section.get("harness_vs_wrk")
    if share is not None:
        lines.append(f"   Locust reaches {share:.0%} of wrk's rate on the same server")
    if section["harness"]["client_bound"]:
        lines.append("   Locust is near a full core: the client, not the server, sets the rate")
    return lines


def _events(section: Record, _record: Record) -> list[str]:
    lines = ["5. Event recorder (fork, exit, reap of every child)"]
    storm = section.get("fork_storm")
    if storm:
        lost = storm["events_lost"]
        lines += [
            f"   fork-exit-wait, {storm['workers']} loops:"
            f" {_num(storm['rate_per_s_without'], ',.0f')} forks/s without the recorder,"
            f" {_num(storm['rate_per_s_with'], ',.0f')} with;"
            f" {storm['children_recorded']:,} of {storm['forks']:,} children recorded,"
            f" {'n/a' if lost is None else lost} events lost ({storm['overflows']} overflows)"
        ]
    server = section.get("server")
    if server:
        matches = {True: "= its counter", False: "DIFFERS from its counter", None: "(no counter)"}
        lines += [
            f"   ours under load: {server['forks_recorded']:,} forks recorded"
            f" {matches[server['matches_counter']]}, {server['events_lost']} events lost;"
            f" {_num(server.get('cpu_us_per_child'), '.0f')} us CPU per child"
            f" ({_num(server['cpu_us_per_event'], '.1f')} per event of the machine),"
            + _reap_timing(server),
            "   the recorder's share of the machine's CPU during its loads:"
            f" {_num(server.get('recorder_share_of_machine'), '.1%')}",
            f"   with / without the recorder, one server: {_target(server['target'])}",
        ]
    return lines


def _reap_timing(server: Record) -> str:
    """How the reaps were timed: stamped by the kernel, or seen by a poller (how late)."""
    if (server.get("sources") or {}).get("reaps") == "kernel":
        return " reaps stamped by the kernel"
    return f" reaps seen {_num(server['reap_latency_ms_p99'], '.2f')} ms late (p99)"


def _exporter(section: Record, _record: Record) -> list[str]:
    lines = ["6. Exporter: one scrape of the whole host (prometheus_client's whole exposition)"]
    if "skipped" in section:
        return [*lines, f"   skipped: {section['skipped']}"]
    verdict = "met" if section["within_budget"] else "MISSED"
    return [
        *lines,
        f"   {section['processes']:,} processes ({section['zombies_held']:,} zombies held):"
        f" {section['ms']:.1f} ms wall, {section['cpu_ms']:.1f} ms CPU"
        f" (median of {section['scrapes']}; slowest {section['max_ms']:.1f} ms;"
        f" start, a pidfd per process: {section['start_ms']:.1f} ms)",
        f"   budget {section['budget_ms']:g} ms a scrape: {verdict}",
    ]


def _target(target: Record) -> str:
    """The median's verdict, and whether the rounds could tell: a verdict whose interval
    holds the target is not shown, and says so."""
    if target["ratio"] is None:
        return "not measured"
    verdict = "met" if target["met"] else "MISSED"
    interval = target.get("interval")
    if interval is None:
        return f"{target['ratio']:.2f}x (target >= {target['target']:g}: {verdict})"
    spread = (
        f"{target['confidence']:.0%} interval {interval[0]:.3f}-{interval[1]:.3f}"
        f" over {len(target['pairs'])} pairs"
    )
    if not target["shown"]:
        verdict += " by the median, NOT SHOWN: the interval holds the target"
    return f"{target['ratio']:.3f}x ({spread}; target >= {target['target']:g}: {verdict})"


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f} MB"
