"""The run's figures as PNG files: zombies.png, children.png, lifetimes.png and one
dashboard per scenario.

Figures are built with matplotlib's object API on an explicit Agg canvas, never through
pyplot: no GUI backend is ever chosen, no global figure registry grows, and a harness that
already imported pyplot for something else is not switched to another backend under it.
Series are numpy arrays handed to matplotlib whole, so a 12,000-row run draws as fast as
a short one. Every series shares one clock: seconds since the scenario started.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from diagnostics.contract import CHILDREN_PNG, LIFETIMES_PNG, ZOMBIES_PNG
from reports import exact
from reports.rundir import Run, Scenario
from reports.series import envelope, last_finite, peak, windowed_rate
from reports.table import parameter
from reports.verdicts import init_in_front, pid1_init

DPI = 110
WIDTH_IN = 10.0
# The same scenario keeps the same colour in every figure: scenario.json's color_key is
# its place in loadtest/scenarios.py's list of our scenarios (one per strategy, in
# server/reapers.py's order, then the fd leak), and these are taken in that order, so
# the default scenarios keep the colours they always had. Red is for the leak, and for
# a watched process's zombies.
PALETTE = ("#2ca02c", "#d62728", "#ff7f0e", "#1f77b4", "#9467bd", "#8c564b")
WATCH_COLOR = "#d62728"
# A scenario with no key (a server given by --server-cmd): grey, then the spares. Past the
# palette, keyed scenarios take the spares in order (the faults, then the containers' four:
# pid1-no-init, pid1-dumb-init, pid1-tini, pid1-tini-no-reaper); there are enough for every
# scenario of loadtest/scenarios.py to have its own (a test holds them to it).
KEYLESS_COLOR = "#7f7f7f"
SPARE_COLORS = (
    "#637939", "#e377c2", "#843c39", "#393b79", "#17becf", "#bcbd22", "#e7ba52", "#7b4173"
)  # fmt: skip
# Live children are not a scenario: a neutral colour, so no scenario's colour means two things.
LIVE_COLOR = "#555555"
# A reaper's zombies are drawn again in an inset when their peak is under this share of
# the zombies axis; a scenario's requests line is drawn only when its zombies reach this
# share of its requests (it is the reference for "one zombie per request"; beside a
# reaper's few zombies it only squashes the axis, and beside a partial leak it lies
# near the other scenarios' lines and reads as theirs); a dashboard gets a separate
# live-children row when zombies outnumber live children by this ratio (one axis would
# flatten the live line onto the floor).
ZOOM_SHARE = 0.05
REFERENCE_SHARE = 0.5
DWARF_RATIO = 10
RATE_WINDOW_S = 1.0
RSS_HEADROOM = 1.6
# Past this many samples a series has more points than pixels across the plot; it is
# drawn as ENVELOPE_BINS groups instead (see series.envelope).
MAX_RAW_POINTS = 1500
ENVELOPE_BINS = 600


def text(value: str, limit: int = 60) -> str:
    """Data shown as literal text: '$' would start matplotlib mathtext, long names are cut."""
    value = " ".join(value.split())
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value.replace("$", r"\$")


def subject(run: Run) -> str:
    """Whose children the figures count: the server under load, or the watched process."""
    if run.kind != "watch":
        return "the server"
    parameters = run.record.parameters
    pid = parameters.get("pid")
    command = parameter(parameters.get("cmdline"))
    who = f"PID {pid}" if pid is not None else "the watched process"
    return f"{who} ({command})" if parameters.get("cmdline") else who


def time_label(run: Run) -> str:
    return f"seconds since the {'watch' if run.kind == 'watch' else 'scenario'} started"


def scenario_colors(run: Run) -> dict[str, str]:
    """Each scenario's colour, by the key the harness recorded (see PALETTE)."""
    if run.kind == "watch":
        return {scenario.name: WATCH_COLOR for scenario in run.scenarios}
    keyed = PALETTE + SPARE_COLORS
    keyless = itertools.chain([KEYLESS_COLOR], itertools.cycle(SPARE_COLORS))
    colors: dict[str, str] = {}
    for scenario in run.scenarios:
        key = scenario.record.color_key
        colors[scenario.name] = next(keyless) if key is None else keyed[key % len(keyed)]
    return colors


def _darker(color: str) -> tuple[float, float, float]:
    """The same hue at half the brightness: a scenario's second line, seen over its first."""
    red, green, blue = to_rgb(color)
    return (red / 2, green / 2, blue / 2)


def _figure(height_in: float) -> Figure:
    figure = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _caption(figure: Figure, caption: str) -> None:
    """The one line under a figure that says what it shows."""
    figure.text(0.5, 0.012, text(caption, 150), ha="center", va="bottom", fontsize=9, color="#333")


def _style(ax: Axes, ylabel: str, counts: bool = False) -> None:
    """Label, grid and a y axis from 0 with headroom, so no line runs along the frame.

    Call after plotting: the headroom is taken from the data drawn so far.
    """
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    _headroom(ax)
    if counts:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))


def _headroom(ax: Axes) -> None:
    top = ax.dataLim.y1
    ax.set_ylim(0, top * 1.12 if math.isfinite(top) and top > 0 else 1)


def _no_data(ax: Axes, why: str, ylabel: str) -> None:
    ax.text(0.5, 0.5, text(why, 90), transform=ax.transAxes, ha="center", va="center")
    ax.set_ylabel(ylabel)
    ax.set_yticks([])
    ax.spines[["top", "right"]].set_visible(False)


def _panel_legend(ax: Axes, handles: list[Line2D] | None = None) -> None:
    """A dashboard panel's legend above its top right corner, level with the panel's title,
    where it can never cover a line."""
    ax.legend(
        handles=handles,
        loc="lower right",
        bbox_to_anchor=(1, 1),
        ncol=2,
        fontsize=8,
        frameon=False,
        borderaxespad=0.1,
    )


END_LABEL_POINTS = 9
"""The end labels' font size; two labels closer than this (plus a point) are moved apart."""


def _end_label(ax: Axes, t: np.ndarray, values: np.ndarray, color: str, lift: float = 0.0) -> None:
    """The last value written at the end of its line, so the final count needs no squinting;
    ``lift`` points above it where another label would cover it."""
    usable = np.isfinite(t) & np.isfinite(values)
    if usable.any():
        x, y = t[usable][-1], values[usable][-1]
        ax.annotate(
            f"{y:.0f}",
            (x, y),
            xytext=(4, lift),
            textcoords="offset points",
            va="center",
            fontsize=END_LABEL_POINTS,
            color=color,
            fontweight="bold",
        )


def _end_labels(ax: Axes, lines: list[tuple[np.ndarray, np.ndarray, str]]) -> None:
    """End labels of several lines (t, values, colour), each lifted clear of the one below:
    lines that end at nearly the same count would print their numbers over each other."""
    bottom, top = ax.get_ylim()
    points_per_unit = ax.bbox.height * 72 / ax.figure.dpi / ((top - bottom) or 1)
    ends = []
    for t, values, color in lines:
        usable = np.isfinite(t) & np.isfinite(values)
        if usable.any():
            ends.append((float(values[usable][-1]) * points_per_unit, t, values, color))
    floor = -math.inf
    for at, t, values, color in sorted(ends, key=lambda end: end[0]):
        placed = max(at, floor + END_LABEL_POINTS + 1)
        _end_label(ax, t, values, color, lift=placed - at)
        floor = placed


def _line(
    ax: Axes, t: np.ndarray, values: np.ndarray, color: str, lw: float, label: str | None = None
) -> Line2D:
    """A sampled series: raw while it fits the pixels, else a min-max band with its mean.

    Raw samples are drawn as steps that hold each value until the next sample: that is
    all a sample says, and the spacing of random sampling times stays visible.
    """
    if values.size <= MAX_RAW_POINTS:
        (line,) = ax.plot(t, values, color=color, lw=lw, label=label, drawstyle="steps-post")
        return line
    middle, low, high, mean = envelope(t, values, ENVELOPE_BINS)
    ax.fill_between(middle, low, high, color=color, alpha=0.3, lw=0)
    (line,) = ax.plot(middle, mean, color=color, lw=lw, label=label)
    return line


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI)
    return path


@dataclass(frozen=True)
class Counted:
    """What the plots draw of a scenario's children: the event record's exact step
    series where the run has one, else the samples."""

    t: np.ndarray
    live: np.ndarray
    """Live children of the server itself."""
    zombies: np.ndarray
    """Zombies anywhere in its tree."""
    deeper: bool
    """Some of them were held below the server's own children."""
    exact: bool


def counted(scenario: Scenario) -> Counted | None:
    steps = exact.series(scenario)
    if steps is not None and len(steps):
        return Counted(steps.t, steps.live, steps.zombies, bool(steps.deeper.any()), True)
    samples = scenario.samples
    if samples is None:
        return None
    return Counted(
        samples.t, samples["alive"], samples.all_zombies(), samples.has_deeper_zombies, False
    )


def _counts_line(
    ax: Axes, counts: Counted, values: np.ndarray, color: str, lw: float, label: str | None = None
) -> Line2D:
    """Exact counts as the step function they are (every step, however many: each is a
    fork, an exit or a reap); samples as :func:`_line` draws them."""
    if not counts.exact:
        return _line(ax, counts.t, values, color, lw, label)
    (line,) = ax.plot(counts.t, values, color=color, lw=lw, label=label, drawstyle="steps-post")
    return line


def _zoom(ax: Axes, drawn: list[tuple[Scenario, Counted]], colors: dict[str, str]) -> None:
    """An inset with the scenarios whose zombies hug zero on the main axes.

    Next to a leak of thousands, a reaper's "at most 5 zombies" is a flat line on the
    floor; the inset shows it is really 0 to 5, not nothing.
    """
    inset = ax.inset_axes((0.06, 0.56, 0.36, 0.34))
    for scenario, counts in drawn:
        _counts_line(inset, counts, counts.zombies, colors[scenario.name], 1)
    inset.set_title("zoom on the reaping scenarios", fontsize=8)
    inset.tick_params(labelsize=7)
    inset.grid(True, alpha=0.3)
    inset.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    inset.set_ylim(0, max(peak(counts.zombies) for _, counts in drawn) * 1.25)


def completed_requests(scenario: Scenario) -> tuple[np.ndarray, np.ndarray] | None:
    """(t, requests completed so far): the 10 Hz timeline, else Locust's 1 s history.

    Runs made before the timeline existed have only the history, whose rows are whole
    seconds (placed half a second on, see rundir.LOCUST_CLOCK_OFFSET).
    """
    if scenario.completed is not None:
        return scenario.completed.t, scenario.completed.requests
    if scenario.history is not None and scenario.history_t is not None:
        return scenario.history_t, scenario.history.total_requests
    return None


def _reference(scenario: Scenario, counts: Counted) -> tuple[np.ndarray, np.ndarray] | None:
    """The requests line worth drawing beside a scenario's zombies, or None.

    It is the reference for "one zombie per request": drawn where the zombies reach a
    visible share of the requests, left out where a reaper keeps them near 0.
    """
    series = completed_requests(scenario)
    if series is None:
        return None
    requests = peak(series[1])
    if not requests > 0 or not peak(counts.zombies) >= REFERENCE_SHARE * requests:
        return None
    return series


EXACT_WORDS = "exact (kernel events)"


def _source_words(drawn: list[tuple[Scenario, Counted]]) -> str:
    """How the counts drawn were had: "exact (kernel events)", "sampled" or both."""
    kinds = {counts.exact for _, counts in drawn}
    if kinds == {True}:
        return EXACT_WORDS
    if kinds == {False}:
        return "as sampled"
    exact_ones = ", ".join(text(s.name, 24) for s, counts in drawn if counts.exact)
    return f"exact for {exact_ones} (kernel events), sampled for the others"


def plot_zombies(run: Run, path: Path) -> Path:
    """Zombies per scenario, each against the requests completed for it (dashed)."""
    figure = _figure(5.8)
    ax = figure.subplots()
    figure.subplots_adjust(left=0.08, right=0.72, top=0.92, bottom=0.15)
    colors = scenario_colors(run)
    drawn = [(s, counts) for s in run.scenarios if (counts := counted(s)) is not None]
    deeper = any(counts.deeper for _, counts in drawn)
    legend: list[Line2D] = []
    references: list[Line2D] = []
    for scenario, counts in drawn:
        color = colors[scenario.name]
        legend.append(_counts_line(ax, counts, counts.zombies, color, 2, text(scenario.name)))
        reference = _reference(scenario, counts)
        if reference is not None:
            # On top of the zombies and darker, so where the two coincide both are seen.
            (line,) = ax.plot(*reference, color=_darker(color), lw=1.2, ls="--", zorder=3)
            line.set_label(f"requests ({text(scenario.name, 24)})")
            references.append(line)
        capped_t = scenario.capped_t()
        if not math.isnan(capped_t):
            at = max(int(np.searchsorted(counts.t, capped_t, side="right")) - 1, 0)
            ax.plot([capped_t], [counts.zombies[at]], "X", ms=11, color=color, mec="black")
    ylabel = "zombies (children and deeper)" if deeper else "zombie children (processes)"
    ax.set_title(f"Zombies of {text(subject(run), 80)} over time")
    ax.set_xlabel(time_label(run))
    _style(ax, ylabel, counts=True)
    # A watch has one process: its own axis already fits it, there is nothing to zoom past.
    floor = ZOOM_SHARE * ax.get_ylim()[1]
    flat = [(s, c) for s, c in drawn if run.kind != "watch" and peak(c.zombies) <= floor]
    _end_labels(
        ax,
        [
            (counts.t, counts.zombies, colors[scenario.name])
            for scenario, counts in drawn
            if (scenario, counts) not in flat
        ],
    )
    # The inset is worth drawing only beside a scenario that needs the big axis, and only
    # when a reaping scenario has something to show in it.
    zoomed = [(s, c) for s, c in flat if peak(c.zombies) > 0]
    if zoomed and len(flat) < len(drawn):
        _zoom(ax, zoomed, colors)
    if not drawn:
        _no_data(ax, "no samples and no event record in this run", ylabel)
    legend.extend(references)
    if any(not math.isnan(s.capped_t()) for s, _ in drawn):
        legend.append(
            Line2D([], [], marker="X", ls="", color="grey", mec="black", label="zombie cap hit")
        )
    if legend:  # beside the axes: inside, some corner always has a line or an end label
        ax.legend(
            handles=legend, fontsize=9, loc="upper left", bbox_to_anchor=(1.07, 1), frameon=False
        )
    how = _source_words(drawn)
    if run.kind == "watch":
        caption = f"Zombies of the watched process, {how}."
    elif references:
        fine = all(s.completed is not None for s, c in drawn if _reference(s, c) is not None)
        source = "counted 10 times a second" if fine else "Locust's 1 s history, ±0.5 s"
        caption = (
            f"Solid: zombies, {how}; dashed: requests completed ({source})."
            " Without a reaper they coincide, one zombie per request."
        )
    else:
        caption = f"Zombies, {how}; a working reaper keeps the line flat near 0."
    _caption(figure, caption)
    return _save(figure, path)


def _exact_peak(scenario: Scenario) -> int | None:
    """The server's own high-water mark of children forked and not yet reaped, where it
    is a peak of children in flight: only when every child was reaped (else it counts
    the zombies left behind too)."""
    value = scenario.counter("peak_unreaped")
    final = scenario.final_sample.get("zombies")
    return value if value is not None and final == 0 else None


def plot_children(run: Run, path: Path) -> Path:
    """Live children per scenario, one row each: exact from the event record, else as
    sampled with the server's exact peak beside."""
    drawn = [(s, counts) for s in run.scenarios if (counts := counted(s)) is not None]
    rows = max(len(drawn), 1)
    figure = _figure(1.7 * rows + 1.5)
    axes = figure.subplots(rows, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    inch = 1 / figure.get_figheight()
    figure.subplots_adjust(
        left=0.08, right=0.8, top=1 - 0.55 * inch, bottom=0.9 * inch, hspace=0.25
    )
    colors = scenario_colors(run)
    how = _source_words(drawn)
    figure.suptitle(
        "Live children (requests in flight), " + ("exact" if how == EXACT_WORDS else how),
        fontsize=12,
        y=1 - 0.1 * inch,
        va="top",
    )
    exact_shown = False
    for ax, (scenario, counts) in zip(axes, drawn, strict=False):
        color = colors[scenario.name]
        _counts_line(ax, counts, counts.live, color, 1.2)
        notes = [f"peak {peak(counts.live):.0f}" + (" (exact)" if counts.exact else " sampled")]
        server_peak = None if counts.exact else _exact_peak(scenario)
        if server_peak is not None:
            ax.axhline(server_peak, color=color, ls=":", lw=1.2)
            notes.append(f"exact peak {server_peak} (server)")
            exact_shown = True
        ax.text(
            1.01,
            0.5,
            text(scenario.name, 24) + "\n" + "\n".join(notes),
            transform=ax.transAxes,
            va="center",
            ha="left",
            fontsize=9,
            color=color,
        )
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    if drawn:
        top = max(max(ax.dataLim.y1 for ax in axes[: len(drawn)]), 1)
        axes[0].set_ylim(0, top * 1.12)
    else:
        _no_data(axes[0], "no samples and no event record in this run", "live children")
    axes[-1].set_xlabel(time_label(run))
    figure.text(0.015, 0.5, "live children (processes)", rotation=90, va="center", ha="left")
    if all(counts.exact for _, counts in drawn):
        caption = (
            "Children of the server still running (zombies excluded), from every fork and exit"
        )
    else:
        caption = "Children still running (zombies excluded): exact where the event record ran,"
        caption += " else at each sample, taken at random times"
    if exact_shown:
        caption += "; dotted: the server's exact peak of children not yet reaped"
    _caption(figure, caption + ".")
    return _save(figure, path)


LIFETIME_FLOOR_S = 1e-5
"""The left end of the lifetimes' axis: 10 µs (a reap the kernel stamps may follow its
exit by less; a pidfd's poller cannot time so little)."""


def plot_lifetimes(run: Run, path: Path) -> Path:
    """How long each child stayed a zombie, exit to reap: one curve per scenario, the
    share of the children that exited reaped within each time (log axis). A curve goes
    on dashed at its last level to the right edge: what it lacks of 100% is the children
    never reaped (a scenario that reaped none runs dashed along 0%)."""
    figure = _figure(5.2)
    ax = figure.subplots()
    figure.subplots_adjust(left=0.08, right=0.64, top=0.91, bottom=0.16)
    colors = scenario_colors(run)
    handles: list[Line2D] = []
    curves: list[tuple[np.ndarray, np.ndarray, str]] = []
    longest = 1.0
    for scenario in run.scenarios:
        life = exact.zombie_lifetimes(scenario)
        if life is None or not life.exited:
            continue
        color = colors[scenario.name]
        spans = np.maximum(np.sort(np.concatenate([life.spans, life.bounds])), LIFETIME_FLOOR_S)
        xs = np.concatenate([[LIFETIME_FLOOR_S], spans])
        ys = np.concatenate([[0.0], np.arange(1, spans.size + 1) / life.exited * 100])
        longest = max(longest, float(xs[-1]))
        never = f"{life.never_reaped:,} not reaped" if life.never_reaped else "all reaped"
        label = f"{text(scenario.name, 20)}: {life.exited:,} exited, {never}"
        (line,) = ax.plot(xs, ys, color=color, lw=2, drawstyle="steps-post", label=label)
        handles.append(line)
        curves.append((xs, ys, color))
    if handles:
        right = longest * 3
        for xs, ys, color in curves:  # on to the edge at the level reached: the rest never
            ax.plot([xs[-1], right], [ys[-1], ys[-1]], color=color, lw=1.5, ls="--")
        ax.set_xscale("log")
        ax.set_xlim(LIFETIME_FLOOR_S, right)
        ax.set_ylim(-2, 105)
        ax.axhline(100, color="#999", lw=0.8, ls=":")
        ax.set_ylabel("children that exited, reaped within (%)")
        ax.grid(True, which="both", alpha=0.25)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.03, 1),
                  frameon=False)  # fmt: skip
    else:
        _no_data(ax, "no event record in this run: lifetimes are not measured", "share (%)")
    ax.set_xlabel("time from exit to reap (seconds, log scale)")
    ax.set_title("How long children stay zombies (exit to reap, exact)")
    _caption(
        figure,
        "Exit and reap stamped by the kernel (or the reap seen by a pidfd)."
        " Dashed: the level a scenario stopped at; above it, not reaped when judged.",
    )
    return _save(figure, path)


RUN_PLOT_DRAWERS: dict[str, Callable[[Run, Path], Path]] = {
    ZOMBIES_PNG: plot_zombies,
    CHILDREN_PNG: plot_children,
    LIFETIMES_PNG: plot_lifetimes,
}
"""How each of the contract's run-wide figures (RUN_PLOTS) is drawn: a new one is its file
name there, and a function above with its line here."""


Panel = Callable[[Axes, Scenario, str], None]
"""A dashboard row: draws one scenario on an axes; `color` is the scenario's own."""


def _load_panel(ax: Axes, scenario: Scenario, color: str) -> None:
    completed = scenario.completed
    history, t = scenario.history, scenario.history_t
    if completed is not None:
        t, requests, failures = completed.t, completed.requests, completed.failures
    elif history is not None and t is not None:
        requests, failures = history.total_requests, history.total_failures
    else:
        _no_data(ax, "no Locust request counts (locust_requests.csv missing)", "per second")
        return
    for values, color, label in (
        (requests, "#1f77b4", "requests/s"),
        (failures, "#b42318", "failures/s"),
    ):
        ax.plot(t, windowed_rate(t, values, RATE_WINDOW_S), color=color, lw=1.5, label=label)
    ax.set_title(
        f"Load (Locust, completed per second over {RATE_WINDOW_S:g} s)", loc="left", fontsize=10
    )
    _panel_legend(ax)
    _style(ax, "per second")


def _latency_panel(ax: Axes, scenario: Scenario, color: str) -> None:
    history, t = scenario.history, scenario.history_t
    if history is None or t is None:
        _no_data(ax, "no Locust history: response times not measured", "response time (ms)")
        return
    # Locust's "current" percentiles read 0 until its rolling window has its first
    # snapshot (the first row or two, requests done or not): no response time, so the
    # line starts at the first real one.
    answered = np.logical_or.accumulate(np.nan_to_num(history.p50_ms) > 0)
    ax.plot(t[answered], history.p50_ms[answered], color="#1f77b4", lw=1.5, label="p50")
    ax.plot(t[answered], history.p95_ms[answered], color="#6a3d9a", lw=1.5, label="p95")
    ax.set_title("Response time (Locust)", loc="left", fontsize=10)
    _panel_legend(ax)
    _style(ax, "response time (ms)")


def _children_panel(ax: Axes, scenario: Scenario, color: str) -> None:
    counts = counted(scenario)
    if counts is None:
        _no_data(ax, "no samples and no event record", "children (processes)")
        return
    label = "zombies (children and deeper)" if counts.deeper else "zombie children"
    _counts_line(ax, counts, counts.live, LIVE_COLOR, 1, "live children")
    _counts_line(ax, counts, counts.zombies, color, 2, label)
    _end_label(ax, counts.t, counts.zombies, color)
    how = "exact: every fork, exit and reap" if counts.exact else "as sampled"
    ax.set_title(f"Children: live and zombie ({how})", loc="left", fontsize=10)
    _panel_legend(ax)
    _style(ax, "children (processes)", counts=True)


def _live_panel(ax: Axes, scenario: Scenario, color: str) -> None:
    """Live children on their own axis, for when zombies dwarf them in the children panel."""
    counts = counted(scenario)
    assert counts is not None
    _counts_line(ax, counts, counts.live, LIVE_COLOR, 1, "live children")
    ax.set_title("Live children alone", loc="left", fontsize=10)
    _style(ax, "live children", counts=True)


def _shows_listener_holders(scenario: Scenario) -> bool:
    """Whether a dashboard has the listening socket's row: where our server's children were
    meant to keep it, or where a process of a server not ours was seen holding it (a
    prefork pool's workers, by design, or a fork-per-connection server's children). Our
    correct server's children are left out: each holds it from fork() until its first
    instruction closes it, and a sample that falls in that instant is not a finding."""
    if scenario.record.strategy is not None:
        return scenario.record.child_keeps_listener is True
    samples = scenario.samples
    return samples is not None and peak(samples["listener_holders"]) > 0


def _listener_panel(ax: Axes, scenario: Scenario, color: str) -> None:
    """The processes holding the server's listening socket beside its live children: where
    each child keeps it, the two lines are one."""
    samples = scenario.samples
    if samples is None or not np.isfinite(samples["listener_holders"]).any():
        _no_data(ax, "who holds the listening socket was not measured", "processes")
        return
    _line(ax, samples.t, samples["alive"], LIVE_COLOR, 1, "live children")
    _line(ax, samples.t, samples["listener_holders"], color, 2, "holding the listening socket")
    ax.set_title("Processes holding the listening socket", loc="left", fontsize=10)
    _panel_legend(ax)
    _style(ax, "processes", counts=True)


def _resources_panel(ax: Axes, scenario: Scenario, color: str) -> None:
    samples = scenario.samples
    if samples is None:
        _no_data(ax, "no samples: descriptors and memory not measured", "open fds")
        return
    fds = _line(ax, samples.t, samples["fds"], "#444444", 1.5, "open fds")
    _style(ax, "open fds", counts=True)
    memory = ax.twinx()
    (rss,) = memory.plot(
        samples.t,
        samples["rss_bytes"] / 2**20,
        color="#1f77b4",
        lw=1.2,
        label="RSS",
        drawstyle="steps-post",
    )
    memory.set_ylabel("RSS (MiB)", color="#1f77b4")
    # Two flat lines with the same headroom lie on top of each other: memory gets more,
    # so its line sits lower than the descriptors', and the descriptors are drawn above.
    top = memory.dataLim.y1
    memory.set_ylim(0, top * RSS_HEADROOM if math.isfinite(top) and top > 0 else 1)
    memory.spines[["top"]].set_visible(False)
    ax.set_zorder(memory.get_zorder() + 1)
    ax.patch.set_visible(False)
    init = init_in_front(scenario.record.pid1)
    whose = "" if init is None else f" of PID 1 ({text(init)}), not of the server"
    ax.set_title(f"Open descriptors and memory{whose}", loc="left", fontsize=10)
    _panel_legend(ax, [fds, rss])


def _as_pid1(scenario: Scenario) -> str | None:
    """How the server ran, where it ran as PID 1 of a PID namespace (as in a container)."""
    init = pid1_init(scenario.record.pid1)
    if init is None:
        return None
    return "as PID 1" if init == "none" else f"under {text(init)} as PID 1"


def _mark_timeline(ax: Axes, scenario: Scenario) -> None:
    """Shade the load phase and mark the cap, so every panel reads against the same events."""
    record = scenario.record
    begin, end = scenario.since_start(record.load_started), scenario.since_start(record.load_ended)
    if not math.isnan(begin):
        if math.isnan(end):
            end = last_finite(scenario.samples.t) if scenario.samples is not None else begin
        ax.axvspan(begin, end, color="#1f77b4", alpha=0.06, lw=0)
    capped_t = scenario.capped_t()
    if not math.isnan(capped_t):
        ax.axvline(capped_t, color="black", ls=":", lw=1.2)


def _panels(run: Run, scenario: Scenario) -> list[Panel]:
    """The dashboard's rows: Locust's view unless this is a watch, then the process's view."""
    panels: list[Panel] = [_children_panel]
    counts = counted(scenario)
    if counts is not None and peak(counts.zombies) > DWARF_RATIO * max(peak(counts.live), 1):
        panels.append(_live_panel)
    if _shows_listener_holders(scenario):
        panels.append(_listener_panel)
    panels.append(_resources_panel)
    if run.kind != "watch":
        panels = [_load_panel, _latency_panel, *panels]
    return panels


def plot_dashboard(run: Run, scenario: Scenario, verdict: str, path: Path) -> Path:
    """One scenario on one clock: load, response time, children, descriptors and memory."""
    panels = _panels(run, scenario)
    figure = _figure(2.1 * len(panels) + 1.6)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    inch = 1 / figure.get_figheight()
    figure.subplots_adjust(
        left=0.08, right=0.91, top=1 - 0.95 * inch, bottom=0.85 * inch, hspace=0.32
    )
    color = scenario_colors(run)[scenario.name]
    for ax, panel in zip(axes, panels, strict=True):
        panel(ax, scenario, color)
        _mark_timeline(ax, scenario)
    axes[-1].set_xlabel(time_label(run))
    strategy = scenario.record.strategy
    if run.kind == "watch":
        title = f"{text(scenario.name)}: {text(subject(run), 80)}"
    else:
        how = [f"reaper: {text(strategy)}"] if strategy else []
        how += [as_pid1] if (as_pid1 := _as_pid1(scenario)) else []
        title = text(scenario.name) + (f"  ({', '.join(how)})" if how else "")
    figure.suptitle(title, fontsize=13, fontweight="bold", y=1 - 0.12 * inch, va="top")
    meaning = scenario.record.meaning
    if meaning:
        figure.text(0.5, 1 - 0.48 * inch, meaning, ha="center", va="top", color="#555")
    notes = [f"verdict: {verdict}"]
    if not math.isnan(scenario.since_start(scenario.record.load_started)):
        notes.append("shaded: load running")
    if not math.isnan(scenario.capped_t()):
        notes.append("dotted: zombie cap hit")
    _caption(figure, " · ".join(notes))
    return _save(figure, path)
