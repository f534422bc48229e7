"""One scenario: a server, the sampler on it, Locust against it, and a record of it all.

Order matters and is the same on every path out: the load stops first, then the
server is allowed to finish its in-flight children, the final sample is taken
(the one the cross-checks use), the server is stopped and its counters kept,
the sampler stops, and whatever was orphaned on the way is reaped. scenario.json
is written at the start and rewritten at the end, so even a run killed outright
leaves a record of what it was doing.

The zombie cap (loadtest/cap.py) is held by the kernel where it can be, by the
sampler's stop where it cannot. A sampler that fails (a full disk, say) stops the
load at once: a run nobody watches is not allowed to go on.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from diagnostics import contract
from diagnostics.cpumeter import CpuMeter
from diagnostics.diskio import Reserve, describe
from diagnostics.machine import pid_headroom
from diagnostics.recorder import Recorder
from diagnostics.sampler import Sample
from diagnostics.tree import TreeSnapshot, is_shell_wrapper, snapshot
from loadtest import distributed, web
from loadtest.cap import ZombieCap
from loadtest.drive import LocustRun
from loadtest.errors import HarnessError, ServerDied
from loadtest.expectations import Expectations
from loadtest.feed import LiveFeed
from loadtest.interrupts import INTERRUPTS
from loadtest.live import View
from loadtest.load import (
    LOCUSTFILE,
    LoadShape,
    start_locust,
    start_timeout,
)
from loadtest.outcome import LoadOutcome, judge
from loadtest.processes import reap_orphans
from loadtest.scenario_files import ScenarioFiles
from loadtest.scenarios import Scenario
from loadtest.settle import settle, steady
from loadtest.target import LOOPBACK, Target, start_external, start_ours
from reports.checks import Counts, cross_checks

TICK = 0.25
DEADLINE = "duration"
"""What ended a load that was still running at its deadline: --duration for the web UI's;
a headless Locust stops by itself, so reaching it (with start-up time) is an overrun."""
OVERRUN = "the harness: Locust overran its run time"
HOLDERS_KEPT = 5
"""How many zombie-holding processes scenario.json names, most zombies first."""


@dataclass(frozen=True, slots=True)
class Settings:
    shape: LoadShape
    work_ms: int = 0
    interval: float = 0.05
    zombie_cap: int = 5000
    server_timeout: float = 10.0
    locustfile: Path = LOCUSTFILE
    expectations: Expectations = Expectations()
    ready_log: str | None = None
    settle: float = 5.0
    """Seconds the final sample may wait for the server to settle after the load."""
    max_failures: float = 1.0
    """Percent of failed requests above which the scenario failed."""
    web: web.WebOptions | None = None
    """Locust's web UI drives the load (loadtest/web.py) instead of a headless run."""
    workers: distributed.WorkerOptions | None = None
    """Locust is the master of workers started elsewhere (loadtest/distributed.py)."""
    server_host: str = LOOPBACK
    """Where our server binds: loopback unless remote workers must reach it."""


class Experiment:
    """Runs one scenario into its folder of the run directory."""

    def __init__(
        self,
        scenario: Scenario,
        settings: Settings,
        folder: Path,
        view: View,
        reserve: Reserve | None = None,
    ) -> None:
        self.scenario = scenario
        self.settings = settings
        self.folder = folder
        self.view = view
        self.record: dict[str, Any] = contract.ScenarioRecord(
            name=scenario.name,
            strategy=scenario.strategy,
            **scenario.described(),
            server_cmd=scenario.server_cmd,
            asked={
                "users": settings.shape.users,
                "rate": settings.shape.rate,
                "duration": settings.shape.duration,
                "work_ms": settings.work_ms,
                "processes": settings.shape.processes,
                "locustfile": str(settings.locustfile),
                "expect": asdict(settings.expectations),
                "max_failures": settings.max_failures,
            },
            started=time.time(),
            exit_code=0,
            peak_zombies=0,
            shell_wrapper=False,
        ).to_json()
        self.files = ScenarioFiles(folder, reserve)
        self.cap = ZombieCap(self.record)
        self._sampler_failed = threading.Event()
        self._sampling_started = 0.0
        self._last_before_interrupt: Sample | None = None
        self._locust: LocustRun | None = None
        self._target: Target | None = None
        self._recorder: Recorder | None = None
        self.feed = LiveFeed(
            scenario.name, settings.shape, folder, view, self.record, self._latest_sample
        )
        self._final_taken = False
        self._baseline: TreeSnapshot | None = None

    # -- the run -------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run the scenario; returns its record. Raises KeyboardInterrupt through, after cleanup."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._save()
        try:
            self.cap.choose(self.settings.zombie_cap, pid_headroom())
            self.cap.make_cgroup(self.scenario.name)
            self._start_server()
            self.cap.hold()
            self._start_sampler()
            self._drive_load()
            self._finish_server()
            self._judge_load()
        except HarnessError as error:
            self._fail(error.status, str(error))
            self.record["exit_code"] = error.exit_code
        except KeyboardInterrupt:
            if self._locust is not None:
                self._locust.freeze()  # the load stops first
            self._fail("interrupted", "interrupted (Ctrl-C): stopping and reaping everything")
            self._keep_last_sample_before_interrupt()
            raise
        finally:
            with INTERRUPTS.shielded():  # a second Ctrl-C must not cut the clean-up short
                self._clean_up()
                self._conclude()
                self._save()
        return self.record

    def _start_server(self) -> None:
        self.feed.progress("starting server")
        procs = self.cap.procs_file
        if self.scenario.server_cmd is not None:
            ready_log = self.settings.ready_log
            target = start_external(
                self.scenario.server_cmd,
                self.folder,
                self.settings.server_timeout,
                None if ready_log is None else re.compile(ready_log),
                procs,
            )
            self.record["shell_wrapper"] = is_shell_wrapper(target.process.command)
        else:
            target = start_ours(
                self.scenario,
                self.settings.work_ms,
                self.folder,
                self.settings.server_timeout,
                procs,
                self.settings.server_host,
            )
        self._target = target
        self.record["server_pid"] = target.pid
        self._save()

    def _start_sampler(self) -> None:
        assert self._target is not None
        self._recorder = Recorder(
            self._target.pid,
            self.folder / contract.SAMPLES,
            interval=self.settings.interval,
            on_sample=self._on_sample,
            on_error=self._on_sampler_error,
        )
        self._sampling_started = time.time()
        try:
            self._recorder.start()
        except OSError as error:
            raise HarnessError(describe(error, "opening samples.csv")) from None

    def _on_sample(self, sample: Sample) -> None:
        """Runs in the sampler's thread: keep the peak, and freeze the load at the cap at once.

        The peak is of the load and the settling after it, not of the server's shutdown.
        """
        if INTERRUPTS.first_at is None or sample.time < INTERRUPTS.first_at:
            self._last_before_interrupt = sample
        if sample.zombies > self.record["peak_zombies"] and not self._final_taken:
            self.record["peak_zombies"] = sample.zombies
        if self.cap.shown_by(sample):
            self._reach_cap(sample.elapsed)

    def _reach_cap(self, elapsed: float) -> None:
        """Freeze the load at once (SIGSTOP); the polite stop follows from the main thread."""
        if self.cap.reach(elapsed) and self._locust is not None:
            self._locust.freeze()

    def _on_sampler_error(self, _cause: str) -> None:
        """Runs in the sampler's thread: nobody watches the server any more, so freeze the load."""
        self._sampler_failed.set()
        if self._locust is not None:
            self._locust.freeze()

    def _check_sampler(self) -> None:
        """A failed sampler fails the scenario, with its one-line cause."""
        assert self._recorder is not None
        if not self._sampler_failed.is_set():
            return
        latest = self._recorder.latest
        self.record["data_ends_at"] = latest.time if latest is not None else self.record["started"]
        if self._locust is not None and self._locust.running():
            self._locust.stop(resume=True)
            self.record["load_ended"] = time.time()
        raise HarnessError(self._recorder.error or "sampling stopped")

    def _latest_sample(self) -> Sample | None:
        return self._recorder.latest if self._recorder is not None else None

    def _keep_last_sample_before_interrupt(self) -> None:
        """After Ctrl-C the final sample is the last one taken before it, not one taken while
        the clean-up was ending processes."""
        self.record["interrupted_at"] = INTERRUPTS.first_at or time.time()
        sample = self._last_before_interrupt
        if sample is not None and self.record["final_sample"] is None:
            self.record["final_sample"] = asdict(sample)

    def _drive_load(self) -> None:
        """From a steady server: Locust started, watched until the load ends, and read."""
        shape = self.settings.shape
        front = self.settings.web
        workers = self.settings.workers
        self._note_baseline()
        self._start_locust()
        assert self._locust is not None
        started = time.monotonic()
        self.record["load_started"] = time.time()
        self._save()
        meter = CpuMeter(self._locust.pid)
        if front is not None:
            self.view.message(
                f"open {front.url} in a browser: start a swarm there; its Zombies tab shows the"
                f" server's children. Ctrl-C ends the run (at most {shape.duration} s)."
            )
            try:
                ended_by = self._watch_load(started, meter, started + shape.duration)
            except KeyboardInterrupt:
                ended_by = "Ctrl-C"
            self._locust.stop()
        else:
            deadline = started + shape.duration + start_timeout(shape)
            if workers is not None:
                self.view.message(
                    f"waiting for {workers.expected} Locust worker(s); on each load machine run: "
                    + distributed.worker_command(workers)
                )
                deadline += workers.timeout
            ended_by = self._watch_load(started, meter, deadline)
            if ended_by == DEADLINE:
                ended_by = OVERRUN
                self._locust.stop()
                self.record["warnings"].append("Locust overran its run time and was stopped")
        self.record["load_ended_by"] = ended_by
        self.record["load_ended"] = time.time()
        self._check_sampler()
        self._locust.note(
            self.record,
            self.folder,
            meter,
            time.monotonic() - started,
            shape.processes,
            remote_workers=workers is not None,
        )
        if workers is not None:
            distributed.check_workers(self._locust.log_path, workers)
            self.record["workers"] = distributed.read_workers(self.folder)

    def _note_baseline(self) -> None:
        """What the server holds before the load: the sample and tree the end is compared to."""
        assert self._target is not None and self._recorder is not None
        baseline, is_steady = steady(self._recorder.sample_now, self.settings.server_timeout)
        if not is_steady:
            self.record["warnings"].append(
                "the server's live children were still changing when the load started"
            )
        if baseline is not None:
            self.record["baseline_sample"] = asdict(baseline)
        self._baseline = snapshot(self._target.pid)

    def _start_locust(self) -> None:
        assert self._target is not None
        front = self.settings.web
        workers = self.settings.workers
        try:
            self._locust = LocustRun(
                start_locust(
                    self._target.url,
                    self.settings.shape,
                    self.folder,
                    self.settings.locustfile,
                    self.settings.expectations,
                    None if front is None else web.locust_args(front, self.folder),
                    () if workers is None else distributed.locust_args(workers),
                )
            )
        except OSError as error:
            raise HarnessError(f"Locust could not start: {error.strerror}") from None
        self.record["locust_pid"] = self._locust.pid

    def _watch_load(self, started: float, meter: CpuMeter, deadline: float) -> str:
        """Each tick until the load ends: the sampler, the cap and the server checked, strays
        reaped, the live view (and the Zombies tab's feed) brought up to date. Returns what
        ended the load (a value for scenario.json's load_ended_by)."""
        assert self._target is not None and self._locust is not None
        while self._locust.running():
            meter.update()
            elapsed = time.monotonic() - started
            self._check_sampler()
            if self.cap.kernel_refused():
                self._reach_cap(time.time() - self._sampling_started)
            if self.cap.reached:
                self._note_cap(elapsed)
                return "the zombie cap"
            self._check_server()
            if time.monotonic() > deadline:
                return DEADLINE
            reap_orphans(keep=[self._target.pid, self._locust.pid])
            if self.settings.web is not None:
                self.feed.publish()
            self.feed.progress("load", elapsed, meter)
            time.sleep(TICK)
        return "Locust exited"

    def _note_cap(self, elapsed: float) -> None:
        self._locust.stop(resume=True)
        self.record["capped"] = True
        self.view.message(
            f"{self.scenario.name}: zombie cap of {self.record['cap']} reached"
            f" after {elapsed:.1f} s; load stopped"
        )

    def _check_server(self) -> None:
        assert self._target is not None
        if not self._target.process.running():
            self._locust.stop()
            raise ServerDied(
                f"the server (pid {self._target.pid}) died during the load, exit code "
                f"{self._target.process.popen.returncode}"
            )

    def _finish_server(self) -> None:
        """Let the server settle (see loadtest.settle), take the final sample, stop the server."""
        assert self._target is not None and self._recorder is not None
        self.feed.progress("settling")
        before = self.record["baseline_sample"] or {}
        result = settle(self._recorder.sample_now, before.get("alive", 0), self.settings.settle)
        self._final_taken = True
        self._check_sampler()
        self.record["settle"] = result.record()
        if not result.settled:
            self.record["warnings"].append(
                f"the server had not settled {self.settings.settle:g} s after the load stopped"
                " (live children or zombies still changing): the final sample is as it was then"
            )
        if result.sample is not None:
            self.record["final_sample"] = asdict(result.sample)
        self._note_tree(snapshot(self._target.pid))
        self.feed.progress("stopping server")
        self._target.process.stop(timeout=30)
        self._keep_counters(self._target.final_counters())

    def _note_tree(self, final: TreeSnapshot) -> None:
        """Who holds the zombies at the end, and whether the tree reaped children meanwhile."""
        self.record["zombie_holders"] = [asdict(holder) for holder in final.holders][:HOLDERS_KEPT]
        before = self._baseline.reaped_faults if self._baseline is not None else None
        if before is not None and final.reaped_faults is not None:
            self.record["reaped_child_faults"] = final.reaped_faults - before
        handled = {**(self._baseline.sigchld if self._baseline else {}), **final.sigchld}
        self.record["sigchld_handled"] = {str(pid): how for pid, how in handled.items()}

    def _judge_load(self) -> None:
        """A run that did not load the server is not ok (see loadtest.outcome)."""
        assert self._locust is not None
        load = self.record["load"] or {}
        reasons = load.get("failure_reasons") or []
        outcome = LoadOutcome(
            requests=load.get("requests"),
            failures=load.get("failures"),
            top_reason=(reasons[0]["reason"], reasons[0]["count"]) if reasons else None,
            locust_exit=self.record["locust_exit"],
            stopped_by_harness=self._locust.stopped_by_harness,
            refused_at_cap=self.record.get("refused_at_cap"),
            locust_last_line=self._locust.last_line(),
        )
        judge(outcome, self.settings.max_failures)

    # -- endings -------------------------------------------------------------

    def _fail(self, status: str, message: str) -> None:
        self.record["status"] = status
        self.record["errors"].append(message)
        self.view.message(f"{self.scenario.name}: {message}")

    def _clean_up(self) -> None:
        """Every process this scenario started is ended and reaped, on every path.

        Sampling stops first: samples taken while processes are being ended describe the
        clean-up, not the run.
        """
        if self._recorder is not None:
            self._recorder.stop()
        if self._locust is not None:
            self._locust.end()
        if self._target is not None:
            self._target.process.stop(timeout=30)
            self._keep_counters(self._target.final_counters())
        reap_orphans()
        self.cap.release()

    def _keep_counters(self, counters: dict[str, Any] | None) -> None:
        """The server's final counters, when it printed them; its refused forks are the
        requests it refused at the cap (our server answers those 503), which judging the
        load must know before it counts failures."""
        if counters is None:
            return
        self.record["server_counters"] = counters
        self.record["refused_at_cap"] = counters.get("fork_failures")

    def _conclude(self) -> None:
        record = self.record
        record["ended"] = time.time()
        if record["status"] == "running":
            record["status"] = "capped" if record["capped"] else "ok"
        counters = record["server_counters"]
        if counters is not None:
            self._write(contract.SERVER, counters)
        final = record["final_sample"] or {}
        load = record["load"] or {}
        checks = cross_checks(
            Counts(
                strategy=self.scenario.strategy,
                final_zombies=final.get("zombies"),
                final_alive=final.get("alive"),
                forked=(counters or {}).get("forked"),
                reaped=(counters or {}).get("reaped"),
                accepted=(counters or {}).get("accepted"),
                requests=load.get("requests"),
                users=self.settings.shape.users,
            )
        )
        record["cross_checks"] = [{"ok": check.ok, "text": check.text} for check in checks]
        self.feed.progress(record["status"])

    # -- the record ----------------------------------------------------------

    def _save(self) -> None:
        self._write(contract.SCENARIO, self.record)

    def _write(self, name: str, data: dict[str, Any]) -> None:
        """Write a record of this scenario; a failure fails the scenario (once, in one line)."""
        failure = self.files.write(name, data)
        if failure is not None:
            status = self.record["status"]
            self._fail("failed" if status in ("running", "ok", "capped") else status, failure)
            self.record["exit_code"] = 1
