"""One scenario: a server, the sampler on it, Locust against it, and a record of it all.

Order matters and is the same on every path out: the load stops first, then the
server is allowed to finish its in-flight children, the final sample is taken
(the one the cross-checks use), the server is stopped and its counters kept,
the sampler stops, and whatever was orphaned on the way is reaped. scenario.json
is written at the start and rewritten at the end, so even a run killed outright
leaves a record of what it was doing.

The record (diagnostics.contract.ScenarioRecord) is one typed object for the whole
scenario, owned by the thread that runs it: :meth:`Experiment.run` and its steps alone
assign it, from what the collaborators return (the cap's Enforcement, Held and
Released; Locust's LocustReport; the settle's Settled). The sampler's thread writes
nothing of it: it hands its figures over (loadtest/handoff.py, the cap's event), and
the steps copy them in where they read them. A new figure in scenario.json is a field of
ScenarioRecord and the line of a step that assigns it.

The zombie cap (loadtest/cap.py) is held by the kernel where it can be, by the
sampler's stop where it cannot. A sampler that fails (a full disk, say) stops the
load at once: a run nobody watches is not allowed to go on.

Each figure has one source, named in the record's ``sources``: requests from the
harness's request timeline (as of the interrupt, for an interrupted run), refused forks
from the cgroup's counters where there is one, children and reaps from the server's own
counters, zombies from the samples. Nothing is left running: the server and Locust are
stopped (one SIGTERM, a grace, SIGKILL; both recorded), then every process of the tree
the harness started or adopted that still runs is killed and named (``left_running``).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from diagnostics import contract
from diagnostics.contract import LoadEnd, Phase, Source, Status
from diagnostics.cpumeter import CpuMeter
from diagnostics.defaults import INTERVAL
from diagnostics.diskio import Reserve, describe
from diagnostics.machine import pid_headroom
from diagnostics.recorder import Recorder
from diagnostics.sampler import Sample
from diagnostics.tree import TreeSnapshot, is_shell_wrapper, snapshot
from loadtest import aftermath, defaults, distributed, web
from loadtest.cap import BY_LIVE, Reached, ZombieCap
from loadtest.drive import LocustReport, LocustRun
from loadtest.errors import HarnessError, ServerDied
from loadtest.expectations import Expectations
from loadtest.feed import LiveFeed
from loadtest.handoff import SamplerHandoff
from loadtest.interrupts import INTERRUPTS
from loadtest.live import View
from loadtest.load import (
    LOCUSTFILE,
    LoadShape,
    read_totals,
    start_locust,
    start_timeout,
)
from loadtest.outcome import LoadOutcome, judge, rate_warning
from loadtest.processes import (
    AdoptedProcess,
    Stopped,
    end_leftovers,
    exit_text,
    own_children,
    reap_orphans,
)
from loadtest.scenario_files import ScenarioFiles
from loadtest.scenarios import Scenario
from loadtest.settle import settle, settle_on_events, steady
from loadtest.target import LOOPBACK, Target, start_external, start_ours
from loadtest.trace import TRACE
from loadtest.tree_events import EventSources, TreeEvents
from reports import listener
from reports.checks import scenario_checks

TICK = 0.25
HOLDERS_KEPT = 5
"""How many zombie-holding processes scenario.json names, most zombies first."""


class PidsLimit(HarnessError):
    """The server's live processes, not its zombies, filled its cgroup's pids.max."""

    status = Status.PIDS_LIMIT


@dataclass(frozen=True, slots=True)
class Settings:
    shape: LoadShape
    work_ms: int = defaults.WORK_MS.default
    interval: float = INTERVAL.default
    zombie_cap: int = defaults.ZOMBIE_CAP.default
    server_timeout: float = defaults.SERVER_TIMEOUT.default
    locustfile: Path = LOCUSTFILE
    expectations: Expectations = Expectations()
    ready_log: str | None = None
    settle: float = defaults.SETTLE.default
    """Seconds the final sample may wait for the server to settle after the load."""
    max_failures: float = defaults.MAX_FAILURES.default
    """Percent of failed requests above which the scenario failed."""
    web: web.WebOptions | None = None
    """Locust's web UI drives the load (loadtest/web.py) instead of a headless run."""
    workers: distributed.WorkerOptions | None = None
    """Locust is the master of workers started elsewhere (loadtest/distributed.py)."""
    server_host: str = LOOPBACK
    """Where our server binds: loopback unless remote workers must reach it."""
    events: EventSources = EventSources.ALL
    """The kernel sources the event record may use (loadtest/tree_events.py)."""
    stop_grace: float = defaults.STOP_GRACE.default
    """Seconds the server has to exit after SIGTERM before the harness kills it (SIGKILL)."""


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
        self.record = contract.ScenarioRecord(
            name=scenario.name,
            strategy=scenario.strategy,
            **scenario.described(settings.work_ms),
            server_cmd=scenario.server_cmd,
            asked={
                "users": settings.shape.users,
                "rate": settings.shape.rate,
                "duration": settings.shape.duration,
                "work_ms": scenario.work_ms(settings.work_ms),
                "processes": settings.shape.processes,
                "locustfile": str(settings.locustfile),
                "expect": asdict(settings.expectations),
                "max_failures": settings.max_failures,
            },
            started=time.time(),
            exit_code=0,
            peak_zombies=0,
            shell_wrapper=False,
        )
        self.files = ScenarioFiles(folder, reserve)
        self.cap = ZombieCap()
        self.sampled = SamplerHandoff()
        self._sampler_failed = threading.Event()
        self._sampling_started = 0.0
        self._locust: LocustRun | None = None
        self._target: Target | None = None
        self._recorder: Recorder | None = None
        self.events = TreeEvents(folder, settings.events)
        self._judged_until: float | None = None
        """When the harness asked the server to stop: the event record's figures are of then."""
        self.feed = LiveFeed(
            settings.shape,
            folder,
            view,
            self.record,
            self.sampled,
            self._latest_sample,
            self.events.counts,
        )
        self._baseline: TreeSnapshot | None = None
        self._others = own_children()
        """The harness's children before this scenario: not this scenario's to end."""
        self._ran_s: float | None = None
        self.notices: list[str] = []
        """Warnings the run ends with on stderr (a low rate, a server killed after its
        grace, processes left running), beside the summary's."""

    # -- the run -------------------------------------------------------------

    def run(self) -> contract.ScenarioRecord:
        """Run the scenario; returns its record. Raises KeyboardInterrupt through, after cleanup."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._save()
        TRACE(f"scenario {self.scenario.name}: begins")
        try:
            self._choose_cap()
            self._start_server()
            self._hold_cap()
            self._start_sampler()
            report = self._drive_load()
            self._finish_server()
            self._judge_load(report)
        except HarnessError as error:
            self._fail(error.status, str(error))
            self.record.exit_code = error.exit_code
        except KeyboardInterrupt:
            TRACE(f"scenario {self.scenario.name}: interrupted ({INTERRUPTS.count} signal(s))")
            if self._locust is not None:
                self._locust.freeze("interrupted")  # the load stops first
            self._fail(Status.INTERRUPTED, "interrupted (Ctrl-C): stopping and reaping everything")
            self._keep_last_sample_before_interrupt()
            raise
        finally:
            with INTERRUPTS.shielded():  # a second Ctrl-C must not cut the clean-up short
                self._clean_up()
                self._conclude()
                self._save()
                TRACE(f"scenario {self.scenario.name}: ended {self.record.status}")
        return self.record

    def _choose_cap(self) -> None:
        """The cap, lowered to what the machine allows, and who holds it."""
        self.record.cap = self.cap.choose(self.settings.zombie_cap, pid_headroom())
        enforcement = self.cap.make_cgroup(self.scenario.name)
        self.record.cap_enforcement = enforcement.how
        self.record.cgroup = enforcement.cgroup
        self._warn(enforcement.warning)

    def _hold_cap(self) -> None:
        held = self.cap.hold()
        if held is not None:
            self._add_cgroup_figures(
                baseline=held.baseline, zombies_at_start=held.zombies, pids_max=held.pids_max
            )

    def _add_cgroup_figures(self, **figures: int | None) -> None:
        assert self.record.cgroup is not None
        self.record.cgroup = {**self.record.cgroup, **figures}

    def _start_server(self) -> None:
        self._phase(Phase.STARTING_SERVER)
        procs = self.cap.procs_file
        grace = self.settings.stop_grace
        if self.scenario.server_cmd is not None:
            ready_log = self.settings.ready_log
            target = start_external(
                self.scenario.server_cmd,
                self.folder,
                self.settings.server_timeout,
                grace,
                None if ready_log is None else re.compile(ready_log),
                procs,
                self.scenario.init if self.scenario.pid1 else None,
            )
            self.record.shell_wrapper = is_shell_wrapper(target.command)
        else:
            target = start_ours(
                self.scenario,
                self.settings.work_ms,
                self.folder,
                self.settings.server_timeout,
                grace,
                procs,
                self.settings.server_host,
            )
        self._target = target
        self.record.server_pid = target.pid
        self.record.pid1 = target.pid1_record()
        if isinstance(target.process, AdoptedProcess):
            self._note_daemon(target.process)
        self._save()

    def _note_daemon(self, daemon: AdoptedProcess) -> None:
        command = " ".join(daemon.command)
        self.record.daemonized = {
            "launcher_pid": daemon.launcher.pid,
            "pid": daemon.pid,
            "command": command,
        }
        self.view.message(
            f"{self.scenario.name}: the server daemonized (its launcher, PID {daemon.launcher.pid},"
            f" exited 0): measuring the daemon it left, PID {daemon.pid} ({command})"
        )

    def _start_sampler(self) -> None:
        """The event record and the sampler, on the server as it is before any load."""
        assert self._target is not None
        self._warn(self.events.start(self._target.pid))
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
        """Runs in the sampler's thread: hand the sample over, and freeze the load at the cap
        at once. It writes nothing of the record (loadtest/handoff.py says why)."""
        self.sampled.add(sample, INTERRUPTS.first_at)
        if self.cap.shown_by(sample):
            self._reach_cap(sample.elapsed, sample)

    def _reach_cap(
        self, elapsed: float, sample: Sample | None = None, seen_at: float | None = None
    ) -> None:
        """Freeze the load at once (SIGSTOP); the polite stop follows from the main thread."""
        if self.cap.reach(elapsed, sample, seen_at) and self._locust is not None:
            self._locust.freeze("the cap is reached")

    def _on_sampler_error(self, _cause: str) -> None:
        """Runs in the sampler's thread: nobody watches the server any more, so freeze the load."""
        self._sampler_failed.set()
        if self._locust is not None:
            self._locust.freeze("sampling failed")

    def _check_sampler(self) -> None:
        """A failed sampler fails the scenario, with its one-line cause."""
        assert self._recorder is not None
        if not self._sampler_failed.is_set():
            return
        latest = self._recorder.latest
        self.record.data_ends_at = latest.time if latest is not None else self.record.started
        if self._locust is not None and self._locust.running():
            self._note_stop("locust", self._locust.stop())
            self.record.load_ended = time.time()
        raise HarnessError(self._recorder.error or "sampling stopped")

    def _latest_sample(self) -> Sample | None:
        return self._recorder.latest if self._recorder is not None else None

    def _last_seen(self) -> float | None:
        """When the latest sample was taken (unix time)."""
        latest = self._latest_sample()
        return latest.time if latest is not None else None

    def _keep_last_sample_before_interrupt(self) -> None:
        """After Ctrl-C the final sample is the last one taken before it, not one taken while
        the clean-up was ending processes."""
        self.record.interrupted_at = INTERRUPTS.first_at or time.time()
        sample = self.sampled.before_interrupt
        if sample is not None and self.record.final_sample is None:
            self.record.final_sample = asdict(sample)

    def _drive_load(self) -> LocustReport:
        """From a steady server: Locust started, watched until the load ends, and read."""
        shape = self.settings.shape
        front = self.settings.web
        workers = self.settings.workers
        self._note_baseline()
        self._tighten_cap()  # helpers that ran at start-up may be gone by now
        self._start_locust()
        assert self._locust is not None
        started = time.monotonic()
        self._phase(Phase.LOAD)
        self.record.load_started = time.time()
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
                ended_by = LoadEnd.CTRL_C
            self._note_stop("locust", self._locust.stop())
        else:
            deadline = started + shape.duration + start_timeout(shape)
            if workers is not None:
                self.view.message(
                    f"waiting for {workers.expected} Locust worker(s); on each load machine run: "
                    + distributed.worker_command(workers)
                )
                deadline += workers.timeout
            ended_by = self._watch_load(started, meter, deadline)
            if ended_by == LoadEnd.DURATION:  # a headless Locust stops by itself
                ended_by = LoadEnd.OVERRUN
                self._note_stop("locust", self._locust.stop())
                self._warn("Locust overran its run time and was stopped")
        if self.cap.reached and ended_by not in (LoadEnd.ZOMBIE_CAP, LoadEnd.PIDS_LIMIT):
            ended_by = self._note_cap(time.monotonic() - started)  # reached as Locust ended
        self.record.load_ended_by = ended_by
        self.record.load_ended = time.time()
        self._ran_s = time.monotonic() - started
        self._check_sampler()
        report = self._locust.report(
            self.folder,
            meter,
            self._ran_s,
            shape.processes,
            remote_workers=workers is not None,
        )
        self.record.locust_exit = report.exit_code
        self.record.load = report.load()
        self._sourced(report.source, "requests", "failures")
        self.record.locust_cpu = report.cpu
        self.record.locust_cpu_scope = report.cpu_scope
        self._warn(report.warning)
        if workers is not None:
            distributed.check_workers(self._locust.log_path, workers)
            self.record.workers = distributed.read_workers(self.folder)
        return report

    def _note_baseline(self) -> None:
        """What the server holds before the load: the sample and tree the end is compared to."""
        assert self._target is not None and self._recorder is not None
        baseline, is_steady = steady(self._recorder.sample_now, self.settings.server_timeout)
        if not is_steady:
            self._warn("the server's live children were still changing when the load started")
        if baseline is not None:
            self.record.baseline_sample = asdict(baseline)
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
        self.record.locust_pid = self._locust.pid

    def _watch_load(self, started: float, meter: CpuMeter, deadline: float) -> LoadEnd:
        """Each tick until the load ends: the sampler, the cap and the server checked, strays
        reaped, the live view (and the Zombies tab's feed) brought up to date. Returns what
        ended the load (a value for scenario.json's load_ended_by)."""
        assert self._target is not None and self._locust is not None
        while self._locust.running():
            meter.update()
            elapsed = time.monotonic() - started
            self._check_sampler()
            self._tighten_cap()
            if self.cap.kernel_refused():
                self._reach_cap(time.time() - self._sampling_started, seen_at=self._last_seen())
            if self.cap.reached:
                return self._note_cap(elapsed)
            self._check_server()
            self._check_workers(elapsed)
            if time.monotonic() > deadline:
                return LoadEnd.DURATION
            reap_orphans(keep=[self._target.process.pid, self._locust.pid])
            if self.settings.web is not None:
                self._warn(self.feed.publish())
            self.feed.progress(Phase.LOAD, elapsed, meter)
            time.sleep(TICK)
        return LoadEnd.LOCUST_EXITED

    def _tighten_cap(self) -> None:
        """Keep the cgroup's room for zombies at the cap as the server's live tasks fall."""
        limit = self.cap.tighten()
        if limit is not None:
            self._add_cgroup_figures(pids_max_end=limit)

    def _note_cap(self, elapsed: float) -> LoadEnd:
        """The load is stopped at the cap; what ended it (the zombie cap, or the pids limit when the
        server's live processes rather than its zombies filled the cgroup)."""
        assert self._locust is not None
        self._note_stop("locust", self._locust.stop())
        reached = self.cap.reached_how
        assert reached is not None
        self.record.cap_hit = self._cap_hit(reached)
        if reached.by == BY_LIVE:
            self.view.message(f"{self.scenario.name}: {self._limit_text(reached)}; load stopped")
            return LoadEnd.PIDS_LIMIT
        self.record.capped = True
        self.view.message(
            f"{self.scenario.name}: zombie cap of {self.record.cap} reached"
            f" after {elapsed:.1f} s; load stopped"
        )
        return LoadEnd.ZOMBIE_CAP

    def _cap_hit(self, reached: Reached) -> dict[str, Any]:
        start = (self.record.cgroup or {}).get("baseline")
        return {
            "at": reached.elapsed,
            "by": reached.by,
            "zombies": reached.zombies,
            "live": reached.live,
            "live_at_start": start,
            "pids_max": reached.pids_max,
        }

    def _limit_text(self, reached: Reached) -> str:
        start = (self.record.cgroup or {}).get("baseline")
        return (
            f"the server's live processes grew from {start} to {reached.live} and filled its"
            f" cgroup's pids.max of {reached.pids_max} (the zombie cap {self.record.cap} + the"
            f" live tasks it started with) with {reached.zombies} zombies, {reached.elapsed:.1f} s"
            " into the run: its forks failed from then on. The zombie cap was not reached;"
            " a higher --zombie-cap leaves its live processes more room"
        )

    def _check_server(self) -> None:
        assert self._target is not None and self._locust is not None
        if not self._target.process.running():
            self._note_stop("locust", self._locust.stop())
            raise ServerDied(
                f"the server (pid {self._target.pid}) died during the load"
                f" ({exit_text(self._target.process.returncode)})"
            )

    def _check_workers(self, elapsed: float) -> None:
        """Locust's own worker processes (--processes) that ended while the load ran."""
        assert self._locust is not None
        if self.settings.shape.processes < 2:
            return
        run_over = elapsed >= self.settings.shape.duration
        for lost in self._locust.lost_workers(elapsed, run_over):
            self.record.lost_workers.append(asdict(lost))
            self.view.message(
                f"{self.scenario.name}: Locust worker PID {lost.pid} ended during the load"
                f" ({lost.ended}, {lost.at_s:.1f} s in)"
            )

    def _finish_server(self) -> None:
        """Let the server settle (see loadtest.settle), take the final sample, stop the server."""
        assert self._target is not None and self._recorder is not None
        self._phase(Phase.SETTLING)
        before = self.record.baseline_sample or {}
        take, bound, wait = self._recorder.sample_now, self.settings.settle, self._wait_reaping
        result = settle_on_events(take, self.events.counts, bound, sleep=wait) or settle(
            take, before.get("alive", 0), bound, sleep=wait
        )
        self.sampled.close()
        self._check_sampler()
        self.record.settle = result.record()
        TRACE(f"settle: {result.record()}")
        if not result.settled:
            self._warn(
                f"the server had not settled {self.settings.settle:g} s after the load stopped"
                " (children still changing): it is judged as it was then"
            )
        if result.sample is not None:
            self.record.final_sample = asdict(result.sample)
        server_sample = self._target.server_sample()
        if server_sample is not None:
            self.record.final_server_sample = asdict(server_sample)
        self._note_tree(snapshot(self._target.pid))
        self._judged_until = time.time()
        if self.scenario.shows_listener_aftermath:
            self._show_listener_aftermath()
        self._stop_server()
        if self.cap.cgroup is not None:  # the server is gone: the kernel's count is final
            self.record.refused_at_cap = self.cap.cgroup.refusals()
            self._sourced(Source.CGROUP, "refused_at_cap")

    def _stop_server(self) -> None:
        """One SIGTERM, --stop-grace seconds, then SIGKILL (loadtest/target.py says when a
        PID 1 is killed at once); its counters kept if it printed them. A kill is a warning,
        unless the scenario killed the parent on purpose (the listener-leak aftermath)."""
        assert self._target is not None
        if self._target.process.stopped is None:
            self._phase(Phase.STOPPING_SERVER)
        stopped = self._target.stop(self.settings.stop_grace)
        if "server" not in self.record.stops:
            self._note_stop("server", stopped)
            if stopped.killed:
                self._notice(
                    stopped.why
                    or f"the server did not exit within --stop-grace {self.settings.stop_grace:g}"
                    " s of SIGTERM and was killed (SIGKILL)"
                )
            elif not stopped.signals and self.record.status is Status.RUNNING:
                after = " after the zombie cap was reached" if self.cap.reached else ""
                self._notice(
                    f"the server had ended by itself ({stopped.ended}){after}, before the"
                    " harness stopped it"
                )
        self._keep_counters(self._target.final_counters())

    def _wait_reaping(self, seconds: float) -> None:
        """Wait while settling, reaping what the harness adopted meanwhile: as the
        subreaper it holds the server's orphans, and a zombie of its own is not the
        server's to account for."""
        assert self._target is not None
        reap_orphans(keep=[self._target.process.pid, *([self._locust.pid] if self._locust else [])])
        time.sleep(seconds)

    def _show_listener_aftermath(self) -> None:
        """The parent killed alone, and what its children do with the port it listened on
        (loadtest/aftermath.py); a step that could not be done fails the scenario. The kill
        is the harness's stop of the server (scenario.json's ``stops``), done on purpose."""
        assert self._target is not None
        work_ms = self.scenario.work_ms(self.settings.work_ms) or 0
        shown = aftermath.show(self._target, self.cap.cgroup, work_ms)
        self.record.listener_aftermath = shown.to_json()
        if self._target.process.stopped is not None:
            self._note_stop("server", self._target.process.stopped)
        self.view.message(f"{self.scenario.name}: {listener.headline(shown)}")
        if shown.errors:
            raise HarnessError(f"showing the held listening socket: {shown.errors[0]}")

    def _note_stop(self, name: str, stopped: Stopped) -> None:
        if name not in self.record.stops:
            self.record.stops = {**self.record.stops, name: stopped.record()}

    def _phase(self, phase: Phase) -> None:
        TRACE(f"scenario {self.scenario.name}: phase {phase}")
        self.feed.progress(phase)

    def _note_tree(self, final: TreeSnapshot) -> None:
        """Who holds the zombies at the end, and whether the tree reaped children meanwhile."""
        self.record.zombie_holders = [asdict(holder) for holder in final.holders][:HOLDERS_KEPT]
        before = self._baseline.reaped_faults if self._baseline is not None else None
        if before is not None and final.reaped_faults is not None:
            self.record.reaped_child_faults = final.reaped_faults - before
        handled = {**(self._baseline.sigchld if self._baseline else {}), **final.sigchld}
        self.record.sigchld_handled = {str(pid): how for pid, how in handled.items()}

    def _judge_load(self, report: LocustReport) -> None:
        """A run that did not load the server is not ok (see loadtest.outcome), nor one the
        server's live processes stopped at the pids limit."""
        assert self._locust is not None
        reached = self.cap.reached_how
        if reached is not None and reached.by == BY_LIVE:
            raise PidsLimit(self._limit_text(reached))
        failures_at_cap = None
        if reached is not None:
            failures_at_cap = read_totals(self.folder, reached.time)[0].failures
        outcome = LoadOutcome(
            requests=report.totals.requests,
            failures=report.totals.failures,
            top_reason=report.reasons[0] if report.reasons else None,
            locust_exit=report.exit_code,
            stopped_by_harness=self._locust.stopped_by_harness,
            refused_at_cap=self.record.refused_at_cap,
            locust_last_line=self._locust.last_line(),
            cap_reached=reached is not None,
            failures_at_cap=failures_at_cap,
            ran_s=self._ran_s,
            duration=self.settings.shape.duration,
            lost_workers=tuple(
                f"PID {lost['pid']}: {lost['ended']}, {lost['at_s']:.1f} s in"
                for lost in self.record.lost_workers
            ),
        )
        self._warn(judge(outcome, self.settings.max_failures))
        if (
            reached is None and self.record.load_ended_by != LoadEnd.OVERRUN
        ):  # a load as asked, but slow?
            shape = self.settings.shape
            self._notice(rate_warning(report.totals.rps, shape.rate, shape.users))

    # -- endings -------------------------------------------------------------

    def _fail(self, status: Status, message: str) -> None:
        self.record.status = status
        self.record.errors.append(message)
        self.view.message(f"{self.scenario.name}: {message}")

    def _warn(self, warning: str | None) -> None:
        """A warning for scenario.json, when a step returned one."""
        if warning is not None:
            self.record.warnings.append(warning)

    def _sourced(self, source: str | None, *figures: str) -> None:
        """Name where these figures came from (scenario.json's ``sources``), when known."""
        if source is not None:
            self.record.sources = {**self.record.sources, **dict.fromkeys(figures, source)}

    def _notice(self, warning: str | None) -> None:
        """A warning for scenario.json that the run also ends with, on stderr."""
        if warning is not None:
            self._warn(warning)
            self.notices.append(warning)

    def _clean_up(self) -> None:
        """Every process this scenario started is ended and reaped, on every path.

        Sampling stops first: samples taken while processes are being ended describe the
        clean-up, not the run.
        """
        if self._recorder is not None:
            self._recorder.stop()
        if self._locust is not None:
            self._note_stop("locust", self._locust.end())
        if self._target is not None:
            self._stop_server()
        sessions = [p.process.pid for p in (self._locust, self._target) if p is not None]
        if self._target is not None and isinstance(self._target.process, AdoptedProcess):
            sessions.append(self._target.process.launcher.pid)
        left = end_leftovers(self._others, sessions)
        reap_orphans()
        until = self.record.interrupted_at or self._judged_until
        namespace = self._target.namespace if self._target is not None else None
        server = namespace.command if namespace is not None else None
        summary = self.events.stop(until, self.sampled.zombie_samples, server)
        if summary is not None:
            self.record.events = summary.to_json()
            if not summary.errors:
                self._sourced(Source.EVENTS, *contract.EVENT_FIGURES)
        released = self.cap.release()
        if released is not None:
            self._add_cgroup_figures(forks_refused=released.forks_refused, peak=released.peak)
            self.record.refused_at_cap = released.forks_refused
            self._sourced(Source.CGROUP, "refused_at_cap")
            self._warn(released.problem)
        ended = {leftover.pid: asdict(leftover) for leftover in left}
        for pid in sorted(released.killed if released is not None else ()):
            ended.setdefault(pid, {"pid": pid, "command": "?"})
        if ended:
            self.record.left_running = list(ended.values())
            self._notice(
                f"the harness ended {len(ended)} process(es) of the server's tree still running"
                " after the server and Locust were stopped: "
                + ", ".join(f"PID {e['pid']} ({e['command'][:60]})" for e in ended.values())
            )

    def _keep_counters(self, counters: dict[str, Any] | None) -> None:
        """The server's final counters, when it printed them: the children it forked and
        reaped; without a cgroup, its refused forks are the requests it refused at the cap
        (our server answers those 503), which judging the load must know."""
        if counters is None:
            return
        self.record.server_counters = counters
        self._sourced(Source.SERVER, "children", "reaps")
        if self.cap.cgroup is None:
            self.record.refused_at_cap = counters.get("fork_failures")
            self._sourced(Source.SERVER, "refused_at_cap")

    def _conclude(self) -> None:
        """How the scenario ended, what the sampler's thread handed over, the cross-checks."""
        record = self.record
        record.ended = time.time()
        record.peak_zombies = self.sampled.peak
        if record.capped:
            record.capped_at = self.cap.reached_at
        if record.interrupted_at is not None:  # the load as it was at the interrupt
            totals, source = read_totals(self.folder, record.interrupted_at)
            record.load = {**(record.load or {}), **asdict(totals)}
            self._sourced(source, "requests", "failures")
        if record.status is Status.RUNNING:
            record.status = Status.CAPPED if record.capped else Status.OK
        if record.server_counters is not None:
            self._write(contract.SERVER, record.server_counters)
        record.cross_checks = [check.to_json() for check in scenario_checks(record)]
        self.feed.progress(record.status)

    # -- the record ----------------------------------------------------------

    def _save(self) -> None:
        self._write(contract.SCENARIO, self.record.to_json())

    def _write(self, name: str, data: dict[str, Any]) -> None:
        """Write a record of this scenario; a failure fails the scenario (once, in one line)."""
        failure = self.files.write(name, data)
        if failure is not None:
            status = self.record.status
            self._fail(status if status in contract.NOT_OK else Status.FAILED, failure)
            self.record.exit_code = 1
