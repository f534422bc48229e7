"""One scenario: a server, the sampler on it, Locust against it, and a record of it all.

Order matters and is the same on every path out: the load stops first, then the
server is allowed to finish its in-flight children, the final sample is taken
(the one the cross-checks use), the server is stopped and its counters kept,
the sampler stops, and whatever was orphaned on the way is reaped. scenario.json
is written at the start and rewritten at the end, so even a run killed outright
leaves a record of what it was doing.

The zombie cap is held by the kernel where it can be (loadtest/cgroup.py: the server
runs in a pids cgroup of its own); the sampler's stop at the cap is the second line,
and the only one where no cgroup can be made. A sampler that fails (a full disk, say)
stops the load at once: a run nobody watches is not allowed to go on.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from diagnostics import contract
from diagnostics.cpumeter import CpuMeter
from diagnostics.diskio import Reserve, describe, write_atomic
from diagnostics.machine import pid_headroom
from diagnostics.recorder import Recorder
from diagnostics.sampler import Sample
from diagnostics.tree import TreeSnapshot, is_shell_wrapper, snapshot
from loadtest import cgroup, distributed, web
from loadtest.errors import HarnessError, ServerDied
from loadtest.expectations import Expectations
from loadtest.interrupts import INTERRUPTS
from loadtest.live import Progress, View
from loadtest.load import (
    LOCUSTFILE,
    FailureReader,
    LoadProgress,
    LoadShape,
    failure_reasons,
    read_totals,
    start_locust,
    start_timeout,
)
from loadtest.outcome import LoadOutcome, judge
from loadtest.processes import ManagedProcess, reap_orphans
from loadtest.scenarios import Scenario
from loadtest.settle import settle, steady
from loadtest.target import LOOPBACK, Target, start_external, start_ours
from loadtest.timeline import TimelineReader
from reports.checks import Counts, cross_checks

HEADROOM_RESERVE = 2000
"""PIDs always left for the rest of the machine, whatever the cap asks for."""
MIN_CAP = 100
TICK = 0.25
SATURATED_CPU = 0.9
REASONS_KEPT = 5
"""How many failure reasons scenario.json keeps, most frequent first."""
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


def effective_cap(asked: int, headroom: int) -> int:
    """The zombie cap, lowered so that the run never takes the machine's last PIDs."""
    cap = min(asked, (headroom - HEADROOM_RESERVE) // 2)
    if cap < MIN_CAP:
        raise HarnessError(
            f"only {headroom} PIDs left on this machine: not enough headroom to make zombies safely"
        )
    return cap


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
            leak_client_fd=scenario.leak_client_fd,
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
        self.reserve = reserve
        self._cap_reached = threading.Event()
        self._cap_lock = threading.Lock()
        self._sampler_failed = threading.Event()
        self._cgroup: cgroup.PidsCgroup | None = None
        self._sampling_started = 0.0
        self._last_before_interrupt: Sample | None = None
        self._save_failed: str | None = None
        self._locust: ManagedProcess | None = None
        self._target: Target | None = None
        self._recorder: Recorder | None = None
        self._load_progress = TimelineReader(folder)
        self._failures = FailureReader(folder)
        self._final_taken = False
        self._stopped_locust = False
        self._baseline: TreeSnapshot | None = None

    # -- the run -------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run the scenario; returns its record. Raises KeyboardInterrupt through, after cleanup."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._save()
        try:
            self.record["cap"] = effective_cap(self.settings.zombie_cap, pid_headroom())
            self._make_cgroup()
            self._start_server()
            self._hold_to_cap()
            self._start_sampler()
            self._drive_load()
            self._finish_server()
            self._judge_load()
        except HarnessError as error:
            self._fail(error.status, str(error))
            self.record["exit_code"] = error.exit_code
        except KeyboardInterrupt:
            if self._locust is not None:
                self._locust.signal_group(signal.SIGSTOP)  # the load stops first
            self._fail("interrupted", "interrupted (Ctrl-C): stopping and reaping everything")
            self._keep_last_sample_before_interrupt()
            raise
        finally:
            with INTERRUPTS.shielded():  # a second Ctrl-C must not cut the clean-up short
                self._clean_up()
                self._conclude()
                self._save()
        return self.record

    def _make_cgroup(self) -> None:
        """The server's own pids cgroup, or the reason there is none (then the cap is sampled).

        Until the server is ready, pids.max allows twice the cap: room to start (threads,
        prefork workers), and effective_cap leaves room for it on the machine.
        """
        try:
            self._cgroup = cgroup.create(self.scenario.name, 2 * self.record["cap"])
        except cgroup.CgroupUnavailable as why:
            self.record["cap_enforcement"] = "sampling"
            self.record["warnings"].append(f"cap enforced by sampling: may overshoot ({why})")
            return
        self.record["cap_enforcement"] = "kernel"
        self.record["cgroup"] = {
            "path": str(self._cgroup.path),
            "version": self._cgroup.version,
        }

    def _hold_to_cap(self) -> None:
        """Now that the server is ready: pids.max = the cap + what it holds before the load."""
        if self._cgroup is None:
            return
        baseline = self._cgroup.current()
        if baseline is None:
            raise HarnessError(f"cannot read pids.current of {self._cgroup.path}")
        try:
            self._cgroup.limit(self.record["cap"] + baseline)
        except OSError as error:
            raise HarnessError(
                f"cannot set pids.max of {self._cgroup.path}: {error.strerror}"
            ) from None
        self.record["cgroup"].update(baseline=baseline, pids_max=self.record["cap"] + baseline)

    def _start_server(self) -> None:
        self._progress("starting server")
        procs = self._cgroup.procs_file if self._cgroup is not None else None
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
        held = sample.zombies + sample.descendant_zombies  # every zombie holds a PID
        if held >= self.record["cap"] or self._kernel_refused():
            self._reach_cap(sample.elapsed)

    def _kernel_refused(self) -> bool:
        """The kernel has refused a fork at pids.max: the server is at the cap."""
        return self._cgroup is not None and self._cgroup.refusals() > 0

    def _reach_cap(self, elapsed: float) -> None:
        """Freeze the load at once (SIGSTOP); the polite stop follows from the main thread."""
        with self._cap_lock:
            if self._cap_reached.is_set():
                return
            self._cap_reached.set()
            self.record["capped_at"] = round(elapsed, 3)
        if self._locust is not None:
            self._locust.signal_group(signal.SIGSTOP)

    def _on_sampler_error(self, _cause: str) -> None:
        """Runs in the sampler's thread: nobody watches the server any more, so freeze the load."""
        self._sampler_failed.set()
        if self._locust is not None:
            self._locust.signal_group(signal.SIGSTOP)

    def _check_sampler(self) -> None:
        """A failed sampler fails the scenario, with its one-line cause."""
        assert self._recorder is not None
        if not self._sampler_failed.is_set():
            return
        latest = self._recorder.latest
        self.record["data_ends_at"] = latest.time if latest is not None else self.record["started"]
        if self._locust is not None and self._locust.running():
            self._stop_locust(resume=True)
            self.record["load_ended"] = time.time()
        raise HarnessError(self._recorder.error or "sampling stopped")

    def _keep_last_sample_before_interrupt(self) -> None:
        """After Ctrl-C the final sample is the last one taken before it, not one taken while
        the clean-up was ending processes."""
        self.record["interrupted_at"] = INTERRUPTS.first_at or time.time()
        sample = self._last_before_interrupt
        if sample is not None and self.record["final_sample"] is None:
            self.record["final_sample"] = asdict(sample)

    def _drive_load(self) -> None:
        assert self._target is not None and self._recorder is not None
        shape = self.settings.shape
        baseline, is_steady = steady(self._recorder.sample_now, self.settings.server_timeout)
        if not is_steady:
            self.record["warnings"].append(
                "the server's live children were still changing when the load started"
            )
        if baseline is not None:
            self.record["baseline_sample"] = asdict(baseline)
        self._baseline = snapshot(self._target.pid)
        front = self.settings.web
        workers = self.settings.workers
        try:
            self._locust = start_locust(
                self._target.url,
                shape,
                self.folder,
                self.settings.locustfile,
                self.settings.expectations,
                None if front is None else web.locust_args(front, self.folder),
                () if workers is None else distributed.locust_args(workers),
            )
        except OSError as error:
            raise HarnessError(f"Locust could not start: {error.strerror}") from None
        self.record["locust_pid"] = self._locust.pid
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
                self._watch_web(started, meter)
            except KeyboardInterrupt:
                self.record["load_ended_by"] = "Ctrl-C"
            self._stop_locust()
        else:
            if workers is not None:
                self.view.message(
                    f"waiting for {workers.expected} Locust worker(s); on each load machine run: "
                    + distributed.worker_command(workers)
                )
            self._watch_load(started, meter)
        self.record["load_ended"] = time.time()
        self._check_sampler()
        self._note_locust(meter, time.monotonic() - started)
        if workers is not None:
            distributed.check_workers(self._locust.log_path, workers)
            self.record["workers"] = distributed.read_workers(self.folder)

    def _watch_web(self, started: float, meter: CpuMeter) -> None:
        """While the UI is up: the Zombies tab's figures each tick, until --duration or Ctrl-C."""
        assert self._target is not None and self._locust is not None
        deadline = started + self.settings.shape.duration
        self.record["load_ended_by"] = "duration"
        while self._locust.running() and not self._cap_reached.is_set():
            self._check_sampler()
            self._check_server()
            if self._kernel_refused():
                self._reach_cap(time.time() - self._sampling_started)
            if time.monotonic() > deadline:
                return
            reap_orphans(keep=[self._target.pid, self._locust.pid])
            self._publish_live()
            self._progress("load", time.monotonic() - started, meter)
            time.sleep(TICK)
        if self._cap_reached.is_set():
            self._note_cap(time.monotonic() - started)
        elif not self._locust.running():
            self.record["load_ended_by"] = "Locust exited"

    def _publish_live(self) -> None:
        assert self._recorder is not None
        load = self._load_progress.read()
        rows = web.live_rows(self._recorder.latest, self.record, load.requests if load else None)
        try:
            web.write_live(self.folder, rows)
        except OSError as error:
            self.record["warnings"].append(describe(error, f"writing {web.LIVE_FILE}"))

    def _watch_load(self, started: float, meter: CpuMeter) -> None:
        assert self._target is not None and self._locust is not None
        shape = self.settings.shape
        deadline = started + shape.duration + start_timeout(shape)
        if self.settings.workers is not None:
            deadline += self.settings.workers.timeout
        while self._locust.running():
            meter.update()
            elapsed = time.monotonic() - started
            self._check_sampler()
            if self._kernel_refused():
                self._reach_cap(time.time() - self._sampling_started)
            if self._cap_reached.is_set():
                self._note_cap(elapsed)
                break
            self._check_server()
            if time.monotonic() > deadline:
                self._stop_locust()
                self.record["warnings"].append("Locust overran its run time and was stopped")
                break
            reap_orphans(keep=[self._target.pid, self._locust.pid])
            self._progress("load", elapsed, meter)
            time.sleep(TICK)

    def _note_cap(self, elapsed: float) -> None:
        self._stop_locust(resume=True)
        self.record["capped"] = True
        self.view.message(
            f"{self.scenario.name}: zombie cap of {self.record['cap']} reached"
            f" after {elapsed:.1f} s; load stopped"
        )

    def _check_server(self) -> None:
        assert self._target is not None
        if not self._target.process.running():
            self._stop_locust()
            raise ServerDied(
                f"the server (pid {self._target.pid}) died during the load, exit code "
                f"{self._target.process.popen.returncode}"
            )

    def _stop_locust(self, resume: bool = False) -> None:
        assert self._locust is not None
        self._stopped_locust = True
        self._locust.popen.send_signal(signal.SIGTERM)
        if resume:
            self._locust.signal_group(signal.SIGCONT)
        self._locust.stop(timeout=15)

    def _note_locust(self, meter: CpuMeter, seconds: float) -> None:
        assert self._locust is not None
        code = self._locust.wait(15)
        self.record["locust_exit"] = code
        load = read_totals(self.folder)
        self.record["load"] = {
            "requests": load.requests,
            "failures": load.failures,
            "rps": load.rps,
            "failure_reasons": [
                {"reason": reason, "count": count}
                for reason, count in failure_reasons(self.folder)[:REASONS_KEPT]
            ],
        }
        cores = meter.cpu_seconds / seconds if seconds > 0 else None
        self.record["locust_cpu"] = None if cores is None else round(cores, 3)
        if self.settings.workers is not None:
            self.record["locust_cpu_scope"] = "the master only: workers run elsewhere, unmeasured"
            return
        per_process = (cores or 0) / self.settings.shape.processes
        if per_process >= SATURATED_CPU:
            self.record["warnings"].append(
                f"Locust used {per_process:.0%} of a core per process: the load generator, not"
                " the server, may be the bottleneck (try --processes 2 or a lower --rate)"
            )

    def _finish_server(self) -> None:
        """Let the server settle (see loadtest.settle), take the final sample, stop the server."""
        assert self._target is not None and self._recorder is not None
        self._progress("settling")
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
        self._progress("stopping server")
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
            stopped_by_harness=self._stopped_locust,
            refused_at_cap=self.record.get("refused_at_cap"),
            locust_last_line=_last_line(self._locust),
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
            self._locust.signal_group(signal.SIGCONT)  # a stopped process cannot act on TERM
            self._locust.stop(timeout=15)
        if self._target is not None:
            self._target.process.stop(timeout=30)
            self._keep_counters(self._target.final_counters())
        reap_orphans()
        if self._cgroup is not None:
            self._release_cgroup(self._cgroup)

    def _keep_counters(self, counters: dict[str, Any] | None) -> None:
        """The server's final counters, when it printed them; its refused forks are the
        requests it refused at the cap (our server answers those 503), which judging the
        load must know before it counts failures."""
        if counters is None:
            return
        self.record["server_counters"] = counters
        self.record["refused_at_cap"] = counters.get("fork_failures")

    def _release_cgroup(self, group: cgroup.PidsCgroup) -> None:
        refused, peak = group.refusals(), group.peak()
        self.record["cgroup"].update(forks_refused=refused, peak=peak)
        problem = group.remove(reap=reap_orphans)
        if problem is not None:
            self.record["warnings"].append(problem)

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
        self._progress(record["status"])

    # -- output --------------------------------------------------------------

    def _progress(self, phase: str, elapsed: float = 0.0, meter: CpuMeter | None = None) -> None:
        sample = self._recorder.latest if self._recorder is not None else None
        load = self._load_progress.read() if phase == "load" else _final_load(self.record)
        top_failure = self._failures.top_failure()
        cpu = None
        if meter is not None and elapsed > 0:
            cpu = meter.cpu_seconds / elapsed / self.settings.shape.processes
        self.view.update(
            Progress(
                scenario=self.scenario.name,
                phase=phase,
                elapsed=elapsed,
                duration=self.settings.shape.duration,
                rps=load.rps if load else None,
                requests=load.requests if load else None,
                failures=load.failures if load else None,
                alive=sample.alive if sample else None,
                zombies=sample.zombies if sample else None,
                fds=sample.fds if sample else None,
                locust_cpu=cpu,
                top_failure=top_failure,
            )
        )

    def _save(self) -> None:
        self._write(contract.SCENARIO, self.record)

    def _write(self, name: str, data: dict[str, Any]) -> None:
        """Write a record of this scenario; a failure fails the scenario (once, in one line)."""
        try:
            write_atomic(
                self.folder / name, json.dumps(data, indent=2, default=str) + "\n", self.reserve
            )
        except OSError as error:
            if self._save_failed is None:
                self._save_failed = describe(error, f"writing {name}")
                status = self.record["status"]
                self._fail(
                    "failed" if status in ("running", "ok", "capped") else status, self._save_failed
                )
                self.record["exit_code"] = 1


def _final_load(record: dict[str, Any]) -> LoadProgress | None:
    load = record["load"]
    return None if load is None else LoadProgress(load["requests"], load["failures"], load["rps"])


def _last_line(process: ManagedProcess) -> str:
    try:
        lines = process.log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1] if lines else "no output"
