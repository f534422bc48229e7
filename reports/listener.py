"""The listening socket a child kept: its report section and its figure.

A scenario whose children keep the listening socket (``listener-leak``) ends with the
harness killing the parent alone and watching the port (loadtest/aftermath.py). Its
record, scenario.json's ``listener_aftermath``, is told here in the tutorial's words: the
child must close the listening socket, or the port outlives the parent. The figure shows
the processes holding the socket, a few milliseconds apart, from the held requests to the
free port, with the moment the parent was killed, the failed bind and the queued
connections marked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from diagnostics.contract import ListenerAftermath, ScenarioRecord
from diagnostics.inherited import FIX_LISTENER
from reports.plots import DPI, WIDTH_IN, text

FIGURE_SUFFIX = ".port.png"
"""The figure's file name is the dashboard's stem and this: a dot, which no scenario name
has (loadtest/scenarios.py), so it cannot take another scenario's file."""
LESSON = "the child must close the listening socket, or the port outlives the parent"
RULE = (
    "The tutorial: after fork() the parent must close client_connection and the child must"
    " close the parent's listen_socket. Forking raises the reference count of every socket"
    " the parent holds, and the kernel closes a socket only when its count reaches 0: a"
    " child that keeps listen_socket keeps the port open for as long as it runs, whatever"
    f" becomes of the parent. In short, {LESSON}."
)
HOLDING = "#d62728"
LISTENING = "#1f77b4"


def read(record: ScenarioRecord) -> tuple[ListenerAftermath | None, list[str]]:
    """The scenario's aftermath as far as it can be trusted, and a note per value it could
    not take; None where the scenario did not show one."""
    if not isinstance(record.listener_aftermath, dict):
        return None, []
    found, notes = ListenerAftermath.checked(record.listener_aftermath)
    return found, [f"listener_aftermath: {note}" for note in notes]


def _ms(since: float | None, until: float | None) -> float | None:
    if since is None or until is None:
        return None
    return (until - since) * 1000.0


def _children(count: int) -> str:
    return f"{count:,} child" + ("" if count == 1 else "ren")


def held_for_ms(aftermath: ListenerAftermath) -> float | None:
    """How long the port stayed in LISTEN after the parent was gone: up to the first look
    that found it free, so late by up to one gap between looks (:func:`look_gap_ms`)."""
    return _ms(aftermath.parent_gone_at, aftermath.port_free_at)


def look_gap_ms(aftermath: ListenerAftermath) -> float | None:
    """The median time between two looks at the holders and the port."""
    times = [point[0] for point in aftermath.timeline if point]
    if len(times) < 2:
        return None
    return float(np.median(np.diff(times))) * 1000.0


def _held_for(aftermath: ListenerAftermath, before: str) -> str:
    """ " for 0.49 s (looked at every 18 ms)", or nothing when not measured."""
    held, gap = held_for_ms(aftermath), look_gap_ms(aftermath)
    if held is None:
        return ""
    every = "" if gap is None else f" (looked at every {gap:.0f} ms)"
    return f"{before}{held / 1000:.2f} s{every}"


def _fates(aftermath: ListenerAftermath) -> str:
    fates = aftermath.probe_fates
    told = {"reset": "reset", "closed": "closed without an answer", "no answer": "still unanswered"}
    parts = [f"{count:,} {told.get(fate, fate)}" for fate, count in sorted(fates.items())]
    return ", ".join(parts) if parts else "fates unknown"


def headline(aftermath: ListenerAftermath) -> str:
    """The aftermath in one line: the terminal's, summary.md's and the section's first."""
    a = aftermath
    kill = f"parent killed alone ({a.signal})"
    if a.errors and a.parent_gone_at is None:
        return f"{kill} not done: {a.errors[0]}"
    if not a.listening_after_stop:
        return f"{kill}: the port closed with it, no child held the listening socket"
    parts = [
        f"{kill}: port {a.address} stayed in LISTEN{_held_for(a, ' ')}"
        f", held by {_children(a.holders_at_stop or 0)}",
        f"bind {a.bind_while_held}",
    ]
    if a.probes:
        parts.append(
            f"{a.probes} connections made then: accept queue {a.queued},"
            f" {a.answered_while_held or 0} answered, then {_fates(a)}"
        )
    parts.append(f"once the last child exited, bind {a.bind_after or 'not tried'}")
    return "; ".join(parts)


def paragraphs(aftermath: ListenerAftermath) -> list[str]:
    """What the section says, in the tutorial's words and then the run's figures."""
    a = aftermath
    did = (
        f"After the load the harness held {a.held} requests in flight, so that children were"
        f" running, and killed the parent (PID {a.parent_pid}) alone: {a.signal} to its PID,"
        " not to its process group, as a crash or the OOM killer would. (On SIGTERM our"
        " server waits for its children in flight before it exits, so the port never outlives"
        " it. A killed parent prints no counters: this scenario's forked and reaped are not"
        " known, and its zombies are sampled.)"
    )
    told = [RULE, did]
    if a.errors and a.parent_gone_at is None:
        return [*told, f"It could not be shown: {'; '.join(a.errors)}."]
    if not a.listening_after_stop:
        return [*told, "The port closed with the parent: no child held the listening socket."]
    seen = (
        f"With the parent gone, the port {a.address} stayed in LISTEN{_held_for(a, ' for ')}"
        f", held by {_children(a.holders_at_stop or 0)} (counted from {a.counted_from})."
        f" A new server's bind to it, with SO_REUSEADDR, failed: {a.bind_while_held}"
        + (" (Address already in use)." if a.bind_while_held == "EADDRINUSE" else ".")
    )
    told.append(seen)
    if a.probes:
        told.append(
            f"{a.probes} connections made then were completed by the kernel and queued on the"
            f" socket (its accept queue held {a.queued}), where nobody accepts:"
            f" {a.answered_while_held or 0} answered while a child held it, then"
            f" {_fates(a)} when the last child exited."
        )
    answered = a.held_answered
    how_many = (
        "an unknown number"
        if answered is None
        else ("all" if answered == a.held else f"{answered:,}")
    )
    free = "; then it was free (a bind succeeded)." if a.bind_after == "ok" else "."
    told.append(
        f"The children answered {how_many} of the {a.held} requests they were serving (a"
        " child serves its client without its parent), one by one, and the port stayed"
        f" open until the last of them had exited{free}"
    )
    told.append(f"The fix: {FIX_LISTENER}.")
    told.extend(f"Warning: {warning}" for warning in a.warnings)
    return told


def figure_name(dashboard: str) -> str:
    return Path(dashboard).stem + FIGURE_SUFFIX


def section(record: ScenarioRecord, dashboard: str | None) -> dict[str, Any] | None:
    """summary.json's ``listener_aftermath`` of a scenario: the record, its headline and
    paragraphs, and the figure's file name; None where the scenario did not show one."""
    aftermath, notes = read(record)
    if aftermath is None:
        return None
    return {
        **aftermath.to_json(),
        "held_for_ms": held_for_ms(aftermath),
        "headline": headline(aftermath),
        "paragraphs": [*paragraphs(aftermath), *(f"Note: {note}" for note in notes)],
        "figure": figure_name(dashboard) if dashboard and aftermath.timeline else None,
    }


def plot(record: ScenarioRecord, name: str, path: Path) -> Path:
    """The holders over time around the kill, with the port's LISTEN span, the bind, the
    probes and the free port marked."""
    aftermath, _notes = read(record)
    assert aftermath is not None and aftermath.timeline
    a = aftermath
    zero = a.stopped_at or a.timeline[0][0]
    points = np.array(a.timeline, dtype=float)
    t = (points[:, 0] - zero) * 1000.0
    holders, listening = points[:, 1], points[:, 2]
    figure = Figure(figsize=(WIDTH_IN, 4.2), dpi=DPI)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    figure.subplots_adjust(left=0.08, right=0.97, top=0.86, bottom=0.2)
    # Each look's state holds until the next look: the port was in LISTEN up to the first
    # look that found it gone.
    for start, end, state in zip(t[:-1], t[1:], listening[:-1], strict=True):
        if state > 0:
            ax.axvspan(start, end, color=LISTENING, alpha=0.1, lw=0)
    ax.fill_between(
        [], [], color=LISTENING, alpha=0.1, lw=0, label="port in LISTEN (kernel's table)"
    )
    ax.step(
        t,
        holders,
        where="post",
        color=HOLDING,
        lw=2,
        label="processes holding it (the parent aside)",
    )
    top = max(float(np.nanmax(holders)), 1.0)
    ax.set_ylim(0, top * 1.6)
    ax.axvline(0, color="black", lw=1.5)
    _mark(ax, 0.0, top * 1.45, f"parent killed ({a.signal})")
    marks = (
        (a.bind_tried_at, f"bind: {a.bind_while_held}", 1.25, "left"),
        (a.probed_at, f"{a.probes} connections queued (accept queue {a.queued})", 1.05, "left"),
        (a.port_free_at, f"port free; the queued: {_fates(a)}", 1.45, "right"),
    )
    for at, label, height, side in marks:
        if at is not None:
            x = (at - zero) * 1000.0
            ax.axvline(x, color="#555555", lw=1, ls="--")
            _mark(ax, x, top * height, label, side)
    for at in a.released_at:
        ax.plot([(at - zero) * 1000.0], [0], marker="^", color="#333333", ms=7, clip_on=False)
    ax.plot([], [], marker="^", ls="", color="#333333", label="a held request let finish")
    ax.set_xlabel(f"milliseconds since the parent was killed (parent PID {a.parent_pid})")
    ax.set_ylabel("processes")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="lower left", bbox_to_anchor=(0.25, 0.03), fontsize=8, frameon=False)
    figure.suptitle(
        f"{text(name)}: the listening socket {text(a.address)} after its parent was killed",
        fontsize=12,
        fontweight="bold",
    )
    held = held_for_ms(a)
    caption = LESSON[0].upper() + LESSON[1:]
    if held is not None and not math.isnan(held):
        caption += f": here by {held / 1000:.2f} s"
    figure.text(0.5, 0.015, text(caption + ".", 150), ha="center", va="bottom", fontsize=9)
    figure.savefig(path, dpi=DPI)
    return path


def _mark(ax: Any, x: float, y: float, label: str, side: str = "left") -> None:
    """A label beside the line at ``x``: to its right, or to its left (``side``)."""
    ax.annotate(
        text(label, 70), (x, y), xytext=(4 if side == "left" else -4, 0),
        textcoords="offset points", fontsize=8, va="center", ha=side, color="#222222",
    )  # fmt: skip
