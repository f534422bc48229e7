"""``diagnostics watch``: sample any process without load, into a run directory that
reports/ renders exactly like a load-test run (one scenario, named "watch").

run.json is written before sampling starts (status "running") and rewritten at the
end, so even a killed watch leaves a readable run directory; rows are written whole,
one by one, by the :class:`~diagnostics.recorder.Recorder`. A little space is held
back (a :class:`~diagnostics.diskio.Reserve`) so that the final records can say
"disk full" on a disk the samples filled.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics.diskio import Reserve, describe, write_atomic
from diagnostics.errors import DiagnosticsError
from diagnostics.machine import machine_info
from diagnostics.procstatus import cmdline
from diagnostics.recorder import Recorder

SCENARIO = "watch"


class OutputError(DiagnosticsError):
    """--out cannot hold a run directory; ``str()`` is the one line to print."""


@dataclass(slots=True)
class WatchResult:
    """How a watch ended: status is "ok", "interrupted", "target-exited" or "error"."""

    run_dir: Path
    status: str
    samples: int
    message: str | None = None


def watch(pid: int, duration: float, out: Path, interval: float = 0.05) -> WatchResult:
    """Sample ``pid`` for ``duration`` seconds into the run directory ``out``.

    Raises NoSuchProcess / AccessDenied before anything is written when the target
    cannot be read, FileExistsError when ``out`` already holds a run, OutputError when
    ``out`` cannot be made or written. Ctrl-C (KeyboardInterrupt) ends the watch early
    with status "interrupted".
    """
    command = cmdline(pid)
    if (out / "run.json").exists():
        raise FileExistsError(f"{out} already holds a run (run.json); choose another --out")
    scenario_dir = out / SCENARIO
    reserve = Reserve(out)
    try:
        scenario_dir.mkdir(parents=True, exist_ok=True)
        reserve.take()
    except OSError as error:
        raise OutputError(f"cannot write a run directory in {out}: {error.strerror}") from None
    started = time.time()
    run: dict[str, Any] = {
        "id": time.strftime("%Y%m%d-%H%M%S", time.localtime(started)),
        "kind": "watch",
        "started": started,
        "ended": None,
        "exit_status": "running",
        "parameters": {"pid": pid, "cmdline": command, "duration": duration, "interval": interval},
        "scenarios": [SCENARIO],
        "machine": machine_info(),
    }
    try:
        write_atomic(out / "run.json", _json(run), reserve)
    except OSError as error:
        reserve.release()
        raise OutputError(describe(error, f"writing {out / 'run.json'}")) from None
    samples = 0

    def count(_: object) -> None:
        nonlocal samples
        samples += 1

    recorder = Recorder(pid, scenario_dir / "samples.csv", interval=interval, on_sample=count)
    status, message = "ok", None
    try:
        recorder.start()
        if recorder.wait(duration):  # sampling ended by itself before the duration
            status, message = _early_end(recorder, pid, started)
    except OSError as error:
        status, message = "error", describe(error, "opening samples.csv")
    except KeyboardInterrupt:
        status, message = "interrupted", f"interrupted after {time.time() - started:.1f} s"
    finally:
        recorder.stop()
        ended = time.time()
        run.update(ended=ended, exit_status=status)
        scenario = {
            "name": SCENARIO,
            "strategy": None,
            "started": started,
            "ended": ended,
            "status": status,
            "capped": False,
            "server_pid": pid,
            "samples": samples,
            "data_ends_at": recorder.latest.time if status == "error" and recorder.latest else None,
            "errors": [message] if status == "error" else [],
            "warnings": [message] if status == "target-exited" else [],
        }
        try:
            for path, record in (
                (scenario_dir / "scenario.json", scenario),
                (out / "run.json", run),
            ):
                write_atomic(path, _json(record), reserve)
        except OSError as error:  # the data is there; the record of how it ended is not
            status, message = "error", describe(error, f"writing {path.name}")
        finally:
            reserve.release()
    return WatchResult(out, status, samples, message)


def _early_end(recorder: Recorder, pid: int, started: float) -> tuple[str, str]:
    if recorder.target_gone:
        return "target-exited", f"PID {pid} exited after {time.time() - started:.1f} s"
    return "error", f"sampling stopped: {recorder.error}"


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"
