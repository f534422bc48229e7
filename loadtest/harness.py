"""A whole run: a run directory, its scenarios one after another, then the report.

The harness is the parent of everything it starts and a child subreaper, so a
server that dies hands its zombies back here to be reaped. SIGTERM is treated
like Ctrl-C: the scenario under way is cleaned up, run.json says what happened,
and the report is drawn from whatever data was gathered.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from diagnostics.machine import machine_info
from diagnostics.runs import DEFAULT_RUNS, new_run_dir
from diagnostics.subreaper import become_subreaper
from loadtest.experiment import Experiment, Settings
from loadtest.live import View
from loadtest.processes import reap_orphans
from loadtest.scenarios import Scenario
from reports.build import build_report
from reports.latest import point_latest
from reports.rundir import NotARunDirectory

EXIT_OK, EXIT_INTERRUPTED = 0, 130


@dataclass(frozen=True, slots=True)
class RunPlan:
    scenarios: list[Scenario]
    settings: Settings
    runs_root: Path = DEFAULT_RUNS


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Harness:
    def __init__(self, plan: RunPlan, view: View) -> None:
        self.plan = plan
        self.view = view
        self.run_dir = new_run_dir(plan.runs_root)
        settings = asdict(plan.settings)
        parameters = {**settings.pop("shape"), **settings}
        self.record: dict[str, Any] = {
            "id": self.run_dir.name,
            "kind": "loadtest",
            "started": time.time(),
            "ended": None,
            "exit_status": "running",
            "exit_code": None,
            "parameters": parameters,
            "scenarios": [scenario.name for scenario in plan.scenarios],
            "machine": machine_info(),
            "subreaper": False,
        }

    def run(self) -> int:
        signal.signal(signal.SIGTERM, _interrupt)
        self.record["subreaper"] = become_subreaper()
        if not self.record["subreaper"]:
            self.view.message("warning: cannot become a child subreaper; orphans go to PID 1")
        self._save()
        code, status = EXIT_OK, "ok"
        try:
            for scenario in self.plan.scenarios:
                folder = self.run_dir / scenario.name
                result = Experiment(scenario, self.plan.settings, folder, self.view).run()
                if result["exit_code"]:
                    code = max(code, result["exit_code"])
                    status = f"error: {scenario.name}: {result['errors'][-1]}"
        except KeyboardInterrupt:
            code, status = EXIT_INTERRUPTED, "interrupted"
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            reap_orphans()
            self.record.update(ended=time.time(), exit_status=status, exit_code=code)
            self._save()
        return code

    def report(self) -> str | None:
        """Draw the report; return summary.md, or None (and say why) if it could not be drawn."""
        try:
            result = build_report(self.run_dir)
        except (NotARunDirectory, OSError, ValueError) as error:
            self.view.message(
                f"the report could not be drawn ({error}); the data is in {self.run_dir}"
            )
            return None
        if self.plan.runs_root == DEFAULT_RUNS:
            point_latest(self.plan.runs_root, self.run_dir)
        return result.markdown

    def _save(self) -> None:
        path = self.run_dir / "run.json"
        tmp = path.with_name("run.json.tmp")
        tmp.write_text(json.dumps(self.record, indent=2, default=str) + "\n")
        os.replace(tmp, path)
