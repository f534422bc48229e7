"""``diagnostics watch``: sample any process without load, into a run directory that
reports/ renders exactly like a load-test run (one scenario, named "watch").

run.json is written before sampling starts (status "running") and rewritten at the
end, so even a killed watch leaves a readable run directory; rows are flushed one
by one by the :class:`~diagnostics.recorder.Recorder`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics.machine import machine_info
from diagnostics.procstatus import cmdline
from diagnostics.recorder import Recorder

SCENARIO = "watch"


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
    cannot be read, FileExistsError when ``out`` already holds a run. Ctrl-C
    (KeyboardInterrupt) ends the watch early with status "interrupted".
    """
    command = cmdline(pid)
    if (out / "run.json").exists():
        raise FileExistsError(f"{out} already holds a run (run.json); choose another --out")
    scenario_dir = out / SCENARIO
    scenario_dir.mkdir(parents=True, exist_ok=True)
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
    write_json(out / "run.json", run)
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
    except KeyboardInterrupt:
        status, message = "interrupted", f"interrupted after {time.time() - started:.1f} s"
    finally:
        recorder.stop()
        ended = time.time()
        run.update(ended=ended, exit_status=status)
        write_json(out / "run.json", run)
        write_json(
            scenario_dir / "scenario.json",
            {
                "name": SCENARIO,
                "strategy": None,
                "started": started,
                "ended": ended,
                "status": status,
                "capped": False,
                "server_pid": pid,
                "samples": samples,
                "errors": [message] if status == "error" else [],
                "warnings": [message] if status == "target-exited" else [],
            },
        )
    return WatchResult(out, status, samples, message)


def _early_end(recorder: Recorder, pid: int, started: float) -> tuple[str, str]:
    if recorder.target_gone:
        return "target-exited", f"PID {pid} exited after {time.time() - started:.1f} s"
    return "error", f"sampling stopped: {recorder.error}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename): readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
