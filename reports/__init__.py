"""Run directory in, plots and report out (see DESIGN.md, "Run directory contract").

Public entry points:
- `reports.build.build_report(run_dir) -> ReportResult`: write zombies.png, children.png,
  `<scenario>.png`, index.html, summary.md and summary.json into the run directory.
- `reports.latest.point_latest(runs_root, run_dir)`: repoint `reports/latest` atomically.
- `python -m reports RUN_DIR`: the same from the command line.

Reads files only and imports nothing from loadtest/ or diagnostics/, so any run can be
redrawn later and `diagnostics watch` output renders the same way.
"""
