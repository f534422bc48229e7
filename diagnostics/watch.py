"""``diagnostics watch``: sample any process without load, into a run directory that
reports/ renders exactly like a load-test run (one scenario, named "watch").

Like the load test, a watch goes to a new run directory inside the runs folder ``--out``
(``OUT/<YYYYmmdd-HHMMSS>/``). The report is drawn by ``python -m reports`` in its own
process (diagnostics imports nothing from reports), and its verdict is the one printed.

run.json is written before sampling starts (status "running") and rewritten at the
end, so even a killed watch leaves a readable run directory; rows are written whole,
one by one, by the :class:`~diagnostics.recorder.Recorder`. Beside the samples, an
:class:`~diagnostics.event_recorder.EventRecorder` writes events.csv: every fork, exit
and reap in the target's tree while the watch lasts (children forked before it began
are "pre-existing": their fork time is not known), and scenario.json keeps its summary.
A little space is held back (a :class:`~diagnostics.diskio.Reserve`) so that the final
records can say "disk full" on a disk the samples filled.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from diagnostics import contract
from diagnostics.contract import Status
from diagnostics.defaults import INTERVAL
from diagnostics.diskio import Reserve, describe, write_json
from diagnostics.errors import DiagnosticsError
from diagnostics.event_recorder import EventRecorder
from diagnostics.machine import machine_info
from diagnostics.procstatus import cmdline
from diagnostics.recorder import Recorder
from diagnostics.runs import new_run_dir

SCENARIO = "watch"
REPORT_TIMEOUT_S = 120.0
"""A report is a few plots and pages; a minute or two even for a long watch."""


class OutputError(DiagnosticsError):
    """--out cannot hold a run directory; ``str()`` is the one line to print."""


@dataclass(slots=True)
class WatchResult:
    """How a watch ended: status is OK, INTERRUPTED, TARGET_EXITED or ERROR."""

    run_dir: Path
    status: Status
    samples: int
    message: str | None = None
    events: contract.EventSummary | None = None
    reserve: Reserve | None = None
    """Space still held in the run directory for its last word (run.json, should the report
    fail); the caller releases it."""


def watch(pid: int, duration: float, runs: Path, interval: float = INTERVAL.default) -> WatchResult:
    """Sample ``pid`` for ``duration`` seconds into a new run directory in ``runs``.

    Raises NoSuchProcess / AccessDenied before anything is written when the target
    cannot be read, OutputError when the runs folder or the run directory cannot be made
    or written. Ctrl-C (KeyboardInterrupt) ends the watch early with status "interrupted".
    """
    command = cmdline(pid)
    try:
        out = new_run_dir(runs)
    except OSError as error:
        raise OutputError(f"cannot write a run directory in {runs}: {error.strerror}") from None
    scenario_dir = out / SCENARIO
    reserve = Reserve(out)
    try:
        scenario_dir.mkdir(parents=True, exist_ok=True)
        reserve.take()
    except OSError as error:
        raise OutputError(f"cannot write a run directory in {out}: {error.strerror}") from None
    started = time.time()
    run = contract.RunRecord(
        id=out.name,
        kind="watch",
        started=started,
        parameters={"pid": pid, "cmdline": command, "duration": duration, "interval": interval},
        scenarios=[SCENARIO],
        machine=machine_info(),
    ).to_json()
    try:
        write_json(out / contract.RUN, run, reserve)
    except OSError as error:
        reserve.release()
        raise OutputError(describe(error, f"writing {out / contract.RUN}")) from None
    samples = 0

    def count(_: object) -> None:
        nonlocal samples
        samples += 1

    recorder = Recorder(pid, scenario_dir / contract.SAMPLES, interval=interval, on_sample=count)
    events = EventRecorder(pid, scenario_dir)
    summary: contract.EventSummary | None = None
    status, message = Status.OK, None
    try:
        events.start()
        recorder.start()
        if recorder.wait(duration):  # sampling ended by itself before the duration
            status, message = _early_end(recorder, pid, started)
    except ProcessLookupError:  # gone before the first look
        status, message = Status.TARGET_EXITED, _exited(pid, started)
    except OSError as error:
        status, message = Status.ERROR, describe(error, "opening the record's files")
    except KeyboardInterrupt:
        status, message = Status.INTERRUPTED, f"interrupted after {time.time() - started:.1f} s"
    finally:
        recorder.stop()
        summary = events.stop()
        if events.error and status != Status.ERROR:
            status, message = Status.ERROR, events.error
        ended = time.time()
        run.update(ended=ended, exit_status=status)
        failed = status == Status.ERROR
        scenario = contract.ScenarioRecord(
            name=SCENARIO,
            started=started,
            ended=ended,
            status=status,
            server_pid=pid,
            samples=samples,
            data_ends_at=recorder.latest.time if failed and recorder.latest else None,
            errors=[message] if failed and message else [],
            warnings=[message] if status == Status.TARGET_EXITED and message else [],
            events=summary.to_json(),
        ).to_json()
        try:
            for path, record in (
                (scenario_dir / contract.SCENARIO, scenario),
                (out / contract.RUN, run),
            ):
                write_json(path, record, reserve)
        except OSError as error:  # the data is there; the record of how it ended is not
            status, message = Status.ERROR, describe(error, f"writing {path.name}")
        except BaseException:
            reserve.release()
            raise
    return WatchResult(out, status, samples, message, summary, reserve)


def describe_events(summary: contract.EventSummary) -> str:
    """One line on what the event record saw, and what it rests on."""
    figures = summary.figures
    if not figures:
        return f"events: none recorded ({'; '.join(summary.errors) or 'no record'})"
    life = figures["lifetimes"]
    slowest = (
        ""
        if life["max_s"] is None
        else f" (the slowest {life['max_s'] * 1000:.3g} ms after its exit)"
    )
    parts = [
        f"events: {figures['forked']} children forked, {figures['exited']} exited,"
        f" {figures['reaped']} reaped{slowest}, {figures['final_zombies']} zombies at the end"
    ]
    if summary.pre_existing:
        parts.append(f"{summary.pre_existing} there before the watch began (fork time unknown)")
    parts.append(", ".join(f"{what} from {source}" for what, source in summary.sources.items()))
    if summary.events_lost is not None:
        parts.append(f"{summary.events_lost} events lost")
    parts += [f"{what} sampled: {why}" for what, why in summary.sampled.items()]
    return "; ".join(parts)


def _early_end(recorder: Recorder, pid: int, started: float) -> tuple[Status, str]:
    if recorder.target_gone:
        return Status.TARGET_EXITED, _exited(pid, started)
    return Status.ERROR, f"sampling stopped: {recorder.error}"


def _exited(pid: int, started: float) -> str:
    return f"PID {pid} exited after {time.time() - started:.1f} s"


@dataclass(slots=True)
class Report:
    """What ``python -m reports`` made of a run: its page and verdict, or why not."""

    index: Path | None
    verdict: str | None
    problem: str | None = None


def record_failed_report(run_dir: Path, problem: str, reserve: Reserve | None) -> str | None:
    """run.json says what the exit status says: a watch whose report could not be drawn
    failed (exit 1), as a loadtest run does. Returns why run.json could not say so (a disk
    still full), or None."""
    path = run_dir / contract.RUN
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
        run.update(exit_status=contract.run_failed(problem), exit_code=1)
        write_json(path, run, reserve)
    except OSError as error:
        return describe(error, f"writing {path.name}")
    except ValueError:
        return f"{path.name} is not the JSON this watch wrote"
    return None


def draw_report(run_dir: Path) -> Report:
    """Draw the run's report in a separate ``python -m reports`` and read its verdict."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reports", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=REPORT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Report(None, None, f"the report could not be drawn: {exc}")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no message"]
        return Report(None, None, f"the report could not be drawn: {lines[-1]}")
    try:
        summary = json.loads((run_dir / contract.SUMMARY_JSON).read_text(encoding="utf-8"))
        verdict = str(summary["scenarios"][0]["verdict"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        verdict = None
    return Report(run_dir / contract.INDEX_HTML, verdict)
