"""A whole run: a run directory, its scenarios one after another, then the report.

The harness is the parent of everything it starts and a child subreaper, so a
server that dies hands its zombies back here to be reaped. SIGTERM is treated
like Ctrl-C: the scenario under way is cleaned up, run.json says what happened,
and the report is drawn from whatever data was gathered. Further Ctrl-Cs do not cut
that clean-up short (loadtest/interrupts.py).

A little disk space is held back for the whole run (diagnostics/diskio.py's Reserve):
when the samples fill the disk, the records that say so can still be written.

The exit status is the one run.json records, written last (:meth:`Harness.finish`): a
report that could not be drawn, or a Ctrl-C while it was drawn, changes both.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from diagnostics import contract
from diagnostics.contract import Status
from diagnostics.diskio import Reserve, describe, write_json
from diagnostics.machine import machine_info
from diagnostics.runs import DEFAULT_RUNS, new_run_dir
from diagnostics.subreaper import become_subreaper
from loadtest.experiment import Experiment, Settings
from loadtest.interrupts import INTERRUPTS
from loadtest.live import View
from loadtest.processes import reap_orphans
from loadtest.scenarios import Scenario, scenario_work_ms
from loadtest.trace import TRACE
from reports.build import build_report
from reports.latest import has_data, point_latest
from reports.rundir import NotARunDirectory

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass(frozen=True, slots=True)
class RunPlan:
    scenarios: list[Scenario]
    settings: Settings
    runs_root: Path = DEFAULT_RUNS
    debug: bool = False
    """Trace what the harness does into harness.log (loadtest/trace.py)."""


class NoRoom(OSError):
    """The run directory has not even the room for the run's records."""


class Harness:
    def __init__(self, plan: RunPlan, view: View) -> None:
        self.plan = plan
        self.view = view
        self.run_dir = new_run_dir(plan.runs_root)
        self.reserve = Reserve(self.run_dir)
        try:
            self.reserve.take()
        except OSError as error:
            self.run_dir.rmdir()
            raise NoRoom(describe(error, f"in {plan.runs_root}")) from None
        settings = asdict(plan.settings)
        parameters = {
            **settings.pop("shape"),
            **settings,
            **scenario_work_ms(plan.scenarios, plan.settings.work_ms),
        }
        self.record = contract.RunRecord(
            id=self.run_dir.name,
            kind="loadtest",
            started=time.time(),
            parameters=parameters,
            scenarios=[scenario.name for scenario in plan.scenarios],
            machine=machine_info(),
            subreaper=False,
        )
        self.notices: list[str] = []
        """Warnings for stderr at the end: "SCENARIO: what" (a low rate, a server killed)."""
        if plan.debug:
            TRACE.start(self.run_dir / contract.HARNESS_LOG)
            TRACE(f"run {self.run_dir}: parameters {parameters}")

    def run(self) -> int:
        """Every scenario; the exit status so far. Ctrl-C's are the harness's until
        :meth:`finish` (then :meth:`close`)."""
        INTERRUPTS.install()
        TRACE(f"run begins: pid {os.getpid()}")
        try:
            return self._run_scenarios()
        except KeyboardInterrupt:  # a first Ctrl-C during the final save, raised after it
            return EXIT_INTERRUPTED  # finish() rewrites run.json with it

    def _run_scenarios(self) -> int:
        code, status = EXIT_OK, str(Status.OK)  # or a scenario's contract.run_error
        try:
            self.record.subreaper = become_subreaper()
            TRACE(f"child subreaper: {self.record.subreaper}")
            if not self.record.subreaper:
                self.view.message("warning: cannot become a child subreaper; orphans go to PID 1")
            self._save()
            for scenario in self.plan.scenarios:
                folder = self.run_dir / scenario.name
                experiment = Experiment(
                    scenario, self.plan.settings, folder, self.view, self.reserve
                )
                try:
                    result = experiment.run()
                finally:
                    self.notices += [f"{scenario.name}: {text}" for text in experiment.notices]
                if result.exit_code:
                    code = max(code, result.exit_code)
                    status = contract.run_error(scenario.name, result.errors[-1])
        except KeyboardInterrupt:
            code, status = EXIT_INTERRUPTED, Status.INTERRUPTED
        finally:
            with INTERRUPTS.shielded():
                reap_orphans()
                self.record.ended = time.time()
                self.record.exit_status = status
                self.record.exit_code = code
                self.record.interrupts = INTERRUPTS.count
                saved = self._save()
                self.reserve.release()
        if not saved and code == EXIT_OK:
            code = EXIT_FAILED
        return code

    def finish(self, code: int) -> tuple[int, str | None, str | None]:
        """Draw the report, then rewrite run.json with the status the run ends with.

        Returns the exit status, summary.md (None: no report) and, when the report is
        missing, the one line that says why. A report that could not be drawn fails a run
        that was ok (exit 1); a Ctrl-C while it is drawn interrupts it (exit 130). Either way
        run.json's exit_code is the status the process exits with.
        """
        interrupts = INTERRUPTS.count
        INTERRUPTS.reset()  # a Ctrl-C now stops the drawing
        markdown = problem = None
        try:
            markdown, problem = self._draw()
        except KeyboardInterrupt:
            problem = "the report was not drawn (Ctrl-C while drawing it)"
            code = EXIT_INTERRUPTED
        if problem is not None:
            problem = (
                f"{problem}; the data is in {self.run_dir}"
                f" (redraw it: python -m reports {self.run_dir})"
            )
            TRACE(problem)
        while True:  # twice at most: a first Ctrl-C during the save is raised after it
            try:
                with INTERRUPTS.shielded():
                    code = self._conclude(code, problem, interrupts)
                break
            except KeyboardInterrupt:
                continue
        INTERRUPTS.hold()  # what is left is printing what was written
        return code, markdown, problem

    def close(self) -> None:
        """Give Ctrl-C back to the process (after the end was printed)."""
        INTERRUPTS.restore()

    def _conclude(self, code: int, problem: str | None, interrupts: int) -> int:
        """The exit status, written into run.json when it differs from what was written."""
        status = self.record.exit_status
        # INTERRUPTS.count: also a Ctrl-C Python swallowed (raised in a weakref callback).
        if code == EXIT_INTERRUPTED or INTERRUPTS.count:
            code, status = EXIT_INTERRUPTED, Status.INTERRUPTED
        elif problem is not None and code == EXIT_OK:
            code, status = EXIT_FAILED, contract.run_failed(problem)
        counted = interrupts + INTERRUPTS.count
        if (code, status, counted) != (
            self.record.exit_code,
            self.record.exit_status,
            self.record.interrupts,
        ):
            self.record.exit_code, self.record.exit_status = code, status
            self.record.interrupts = counted
            if not self._save() and code == EXIT_OK:
                code = EXIT_FAILED
        TRACE(f"run ends: exit {code} ({status})")
        TRACE.stop()
        return code

    def _draw(self) -> tuple[str | None, str | None]:
        """summary.md, or None and why the report could not be drawn."""
        try:
            result = build_report(self.run_dir)
        except (NotARunDirectory, OSError, ValueError) as error:
            why = describe(error, "drawing it") if isinstance(error, OSError) else str(error)
            return None, f"the report could not be drawn ({why})"
        if self.plan.runs_root == DEFAULT_RUNS and has_data(result.summary):
            point_latest(self.plan.runs_root, self.run_dir)
        return result.markdown, None

    def _save(self) -> bool:
        """Write run.json; False (and the cause said in one line) if it could not be."""
        try:
            write_json(self.run_dir / contract.RUN, self.record.to_json(), self.reserve)
        except OSError as error:
            self.view.message(f"error: {describe(error, 'writing run.json')}")
            return False
        return True
