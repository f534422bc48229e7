"""``python -m bench``: measure, print the table, write reports/bench/<id>.json.

Every process the bench starts runs in its own session and is ended by its PID or
process group on every path out, Ctrl-C and SIGTERM included; the bench is a child
subreaper, so whatever those processes orphan comes back here and is reaped. The
JSON file is rewritten as each section ends its measurements, so an interrupted
run keeps what it measured.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import output
from bench.cli import parse
from bench.loadgen import LoadError, Locust, Wrk, pick
from bench.sections import SECTIONS
from bench.settings import BenchSettings
from diagnostics.commandline import UsageError, sigterm_as_ctrl_c
from diagnostics.machine import machine_info
from diagnostics.proctable import task_children
from diagnostics.runs import new_run_file
from diagnostics.subreaper import become_subreaper
from loadtest.errors import HarnessError
from loadtest.processes import reap_orphans

ROOT = Path(__file__).resolve().parents[1]
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
FAILURES = (LoadError, HarnessError, subprocess.SubprocessError, OSError, RuntimeError)
"""What a measurement can fail with: reported in one line, the run ends, the file stays."""


def end_leftovers() -> None:
    """Last line of defence: kill and reap any child still here, with its whole session.

    A process interrupted while it was still starting (Ctrl-C while a server has
    not announced its port yet) never reached the code that would stop it.
    """
    for pid in task_children(os.getpid()):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            continue


def code_version() -> str | None:
    """The commit measured, "+changes" when tracked files differ from it; None outside git.

    A figure means little without the code it came from.
    """
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        changes = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+changes" if changes else "")


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def run_sections(
    settings: BenchSettings,
    generator: Wrk | Locust,
    scratch: Path,
    record: output.Record,
    path: Path,
) -> None:
    for number, name in enumerate(settings.sections, 1):
        print(f"bench: {number}/{len(settings.sections)} {name}", file=sys.stderr, flush=True)
        section: output.Record = {}
        record[name] = section
        SECTIONS[name](settings, generator, scratch, section)
        output.write(path, record)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse(argv)
    except UsageError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        path = new_run_file(settings.out, ".json")
    except OSError as error:
        print(f"bench: error: cannot write to {settings.out}: {error}", file=sys.stderr)
        return EXIT_USAGE
    generator = pick(settings.generator, settings.connections)
    record: output.Record = {
        "id": path.stem,
        "kind": "bench",
        "started": time.time(),
        "ended": None,
        "status": "running",
        "settings": {
            "rounds": settings.rounds,
            "seconds": settings.seconds,
            "connections": settings.connections,
            "quick": settings.quick,
            "sections": list(settings.sections),
        },
        "load_generator": generator.describe(),
        "code": code_version(),
        "machine": machine_info(),
    }
    output.write(path, record)
    sigterm_as_ctrl_c()
    record["subreaper"] = become_subreaper()
    code = EXIT_OK
    try:
        with tempfile.TemporaryDirectory(prefix="reaperlab-bench-") as scratch:
            run_sections(settings, generator, Path(scratch), record, path)
        record["status"] = "ok"
    except KeyboardInterrupt:
        record["status"], code = "interrupted", EXIT_INTERRUPTED
    except FAILURES as error:
        record["status"], code = f"error: {error}", EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        end_leftovers()
        reap_orphans()
        record["ended"] = time.time()
        output.write(path, record)
    if code:
        print(f"bench: {record['status']}; what was measured is in {path}", file=sys.stderr)
        return code
    print(json.dumps(record, indent=2) if settings.json_only else output.render(record))
    print(path, file=sys.stderr if settings.json_only else sys.stdout)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
