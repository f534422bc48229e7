"""A leaked child in words: what it is, where it was started, by whom, what became of it.

The place shown is the spawn site: the innermost frame of the spawn stack that
is the user's own code, not the standard library's nor an installed package's
(``subprocess.Popen`` is called in subprocess.py, but the line that matters is
the test's or the project's that called it). When the test's own file is
further out in the stack, that line is shown too. The whole stack is there
with ``verbose`` (pytest -vv).
"""

from __future__ import annotations

import linecache
import os
import sysconfig
from pathlib import Path

from diagnostics import spawns
from diagnostics.leaks import Blame, Fate, Leak
from diagnostics.spawns import Frame, SpawnRecord

LIBRARY_DIRS = tuple(
    sorted(
        {
            os.path.join(sysconfig.get_path(name), "")
            for name in ("stdlib", "platstdlib", "purelib", "platlib")
        },
        key=len,
        reverse=True,
    )
)
"""The standard library's and the installed packages' folders (longest first)."""
OWN_FILES = {spawns.__file__}
"""The tracker's own wrappers: never a spawn site."""

FATES = {
    Fate.REAPED: "reaped now: nothing else in the process owned it",
    Fate.REAPED_BY_OWNER: "reaped now through its owner, {owner}",
    Fate.LEFT_TO_OWNER: "left for its owner to reap: {owner}",
    Fate.LEFT: "left unreaped, as asked",
}
BETWEEN = "between tests (at collection, or by a session/module fixture or a hook)"


def describe(
    leak: Leak, *, root: Path | None = None, test: Frame | None = None, verbose: bool = False
) -> list[str]:
    """The report of one leak: a first line, then indented details.

    ``test``: the test function (file, line, qualified name): when the spawn site is
    in a helper it called, the test's own line is shown too.
    """
    lines = _headline(leak)
    record = leak.record
    if record is not None:
        lines += _site(record, root, test)
    origin = _origin(leak.blame)
    if origin:
        lines.append(f"  {origin}")
    if leak.held:
        lines.append(
            f"  holds {len(leak.held)} socket(s)/pipe(s) of the pytest process (beyond fd 0-2): "
            + "; ".join(held.describe() for held in leak.held)
        )
    if verbose and record is not None:
        lines.append("  spawn stack (most recent call last):")
        for filename, line, function in reversed(record.stack):
            lines.append(f'    File "{filename}", line {line}, in {function}')
            code = linecache.getline(filename, line).strip()
            if code:
                lines.append(f"      {code}")
    return lines


def _headline(leak: Leak) -> list[str]:
    if not leak.zombie:
        first = f"PID {leak.pid} still running (state {leak.state}): {_one_line(leak.command)}"
        return [first] + ([f"  owned by {leak.owner}"] if leak.owner else [])
    status = f"exit status {leak.exit_status}" if leak.exit_status else "exit status unknown"
    first = f"PID {leak.pid} zombie, {status}: {_one_line(leak.command)}"
    return [first] + ([f"  {FATES[leak.fate].format(owner=leak.owner)}"] if leak.fate else [])


def _one_line(command: str) -> str:
    """A command line on one line of the report (``python -c`` code can hold newlines)."""
    return command.replace("\n", "\\n")


def _site(record: SpawnRecord, root: Path | None, test: Frame | None) -> list[str]:
    stack = record.stack
    if not stack:
        return [f"  started by {record.call} (no Python frame)"]
    here = spawn_site(stack)
    filename, line, function = stack[here]
    via = _via(record.call, stack[here - 1]) if here > 0 else ""
    lines = [f"  started by {record.call}{via} at {_where(stack[here], root)}"]
    lines += _code(filename, line)
    if test is not None and not _same_function(stack[here], test):
        for frame in stack[here + 1 :]:
            if _same_function(frame, test):
                lines.append(f"  called from the test at {_where(frame, root)}")
                lines += _code(frame[0], frame[1])
                break
    return lines


def _same_function(frame: Frame, function: Frame) -> bool:
    return frame[2] == function[2] and os.path.samefile(frame[0], function[0])


def spawn_site(stack: tuple[Frame, ...]) -> int:
    """Index of the frame to show: the innermost of the user's own code.

    Failing that (a thread of a library, a pytest plugin), the innermost frame
    outside the tracker; failing that, the innermost.
    """
    for index, (filename, _, _) in enumerate(stack):
        if not _is_library(filename) and filename not in OWN_FILES:
            return index
    for index, (filename, _, _) in enumerate(stack):
        if filename not in OWN_FILES:
            return index
    return 0


def _is_library(filename: str) -> bool:
    return filename.startswith("<") or filename.startswith(LIBRARY_DIRS)


def _via(call: str, callee: Frame) -> str:
    """ " via multiprocessing.BaseContext.Pool": the library call the site made, when it
    is not the spawning call itself (``subprocess.Popen.__init__`` for subprocess.Popen).
    """
    name = f"{_module(callee[0])}.{callee[2]}"
    return "" if name.startswith(call) else f" via {name}"


def _module(filename: str) -> str:
    """The top-level module a library file belongs to: ``multiprocessing/pool.py`` ->
    ``multiprocessing``; a frozen module (``<frozen os>``) -> ``os``."""
    if filename.startswith("<frozen "):
        return filename[len("<frozen ") : -1]
    for folder in LIBRARY_DIRS:
        if filename.startswith(folder):
            first = filename[len(folder) :].split(os.sep)[0]
            return first.removesuffix(".py")
    return Path(filename).stem


def _where(frame: Frame, root: Path | None) -> str:
    filename, line, function = frame
    return f"{_relative(filename, root)}:{line} in {function}"


def _relative(filename: str, root: Path | None) -> str:
    if root is not None:
        try:
            return str(Path(filename).resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return filename


def _code(filename: str, line: int) -> list[str]:
    code = linecache.getline(filename, line).strip()
    return [f"      {code}"] if code else []


def _origin(blame: Blame) -> str:
    """Who started the child, when the report must say more than the spawn site."""
    when = f"during {blame.during}" if blame.during else BETWEEN
    if blame.by_start_time:
        return (
            f"no spawn record (adopted by pytest, the subreaper, after its parent exited, "
            f"or started by C code): it started {when}, by its start time"
        )
    thread = blame.thread
    if thread is None:
        return "" if blame.test is not None else f"started {when}"
    by = f"by thread {thread.name!r}"
    if not thread.known:
        return f"started {when} {by}, not started through threading (its origin is unknown)"
    if thread.started_during == blame.during and blame.test is not None:
        return f"started {by}, which the test started"
    if thread.started_during is None:
        return f"started {when} {by}, which was started between tests"
    return f"started {when} {by}, which {thread.started_during} left running"
