"""Run directory in, plots and report out (see docs/design.md, "The run directory contract").

Public entry points:
- `reports.build.build_report(run_dir) -> ReportResult`: write zombies.png, children.png,
  `<scenario>.png`, index.html, summary.md and summary.json into the run directory.
- `reports.latest.point_latest(runs_root, run_dir)`: repoint `reports/latest` atomically.
- `python -m reports RUN_DIR`: the same from the command line.

Reads files only, so any run can be redrawn later and `diagnostics watch` output renders
the same way. It imports nothing from loadtest/; from diagnostics/ only what reads or
names a run directory's files (contract, events, lifetimes), the one-line CLI errors, and
the fix inherited.py gives, so a fix is worded once.
"""
