"""python -m reports RUN_DIR: redraw the plots and report of a run directory.

Prints the paths it wrote. Exit status 2 with one line on stderr when RUN_DIR is not a run
directory; 1 when the report cannot be written there.
"""

from __future__ import annotations

import sys
from pathlib import Path

from diagnostics.commandline import OneLineParser, UsageError
from reports.build import build_report
from reports.rundir import NotARunDirectory


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m reports",
        description="Plots and report (index.html, summary.md, summary.json) for a run directory.",
    )
    parser.add_argument("run_dir", type=Path, help="a run directory, or reports/latest")
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"reports: error: {exc}", file=sys.stderr)
        return 2
    try:
        result = build_report(args.run_dir)
    except NotARunDirectory as exc:
        print(f"reports: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"reports: cannot write the report: {exc}", file=sys.stderr)
        return 1
    for path in result.written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
