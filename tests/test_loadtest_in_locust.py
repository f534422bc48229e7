"""The rule no import shows by itself: locust and gevent stay in Locust's own process.

gevent patches fork, waitpid and SIGCHLD in whatever process imports it, so a harness
that loaded it would have its server's children reaped behind its back. Everything that
needs locust lives in loadtest/in_locust/, which Locust loads by path; these tests hold
the line: no module outside that package imports it (or locust, or gevent), and setting
up a run as ``python -m loadtest`` does loads neither into the process.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.server_helpers import ROOT

IN_LOCUST = "loadtest.in_locust"
LOCUST_SIDE = ("locust", "gevent", IN_LOCUST)
PACKAGES = ("reaperlab", "server", "loadtest", "diagnostics", "reports", "bench", "tests")


def imported(path: Path) -> set[str]:
    """Every module a file imports, as written (``from a import b`` counts as a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def is_locust_side(module: str) -> bool:
    return any(module == side or module.startswith(f"{side}.") for side in LOCUST_SIDE)


def test_nothing_outside_in_locust_imports_it_or_locust() -> None:
    in_locust = ROOT / "loadtest" / "in_locust"
    files = [
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if in_locust not in path.parents
    ]
    assert len(files) > 50  # the whole tree was read
    offenders = {
        str(path.relative_to(ROOT)): sorted(filter(is_locust_side, imported(path)))
        for path in files
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_import_check_sees_each_form_of_import(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import loadtest.in_locust.timeline\nfrom loadtest import in_locust\n"
        "from gevent import socket\nimport locust as l\nfrom . import locust\n"
    )
    assert sorted(filter(is_locust_side, imported(source))) == [
        "gevent", "gevent.socket", "loadtest.in_locust", "loadtest.in_locust.timeline", "locust",
    ]  # fmt: skip


# Builds what `python -m loadtest` builds before it starts any process: the parsed flags,
# the plan with its Settings, the harness with its run directory, and each scenario's
# Experiment (its cap, live feed and readers), for a headless, a --web and a
# distributed run. Then lists whatever of locust, gevent or in_locust got imported.
SETUP = """
import json, sys
from pathlib import Path
import loadtest, loadtest.__main__, loadtest.experiment, loadtest.harness
from loadtest.__main__ import build_parser, plan_from
from loadtest.experiment import Experiment
from loadtest.harness import Harness
from loadtest.live import PlainView

out = Path(sys.argv[1])
for flags in (["--all"], ["--web"], ["--expect-workers", "2", "--master-bind", "127.0.0.1"]):
    plan = plan_from(build_parser().parse_args([*flags, "--duration", "3", "--out", str(out)]))
    harness = Harness(plan, PlainView())
    for scenario in plan.scenarios:
        folder = harness.run_dir / scenario.name
        Experiment(scenario, plan.settings, folder, PlainView(), harness.reserve)
    harness.reserve.release()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("locust", "gevent")
                        or m.startswith("loadtest.in_locust"))))
"""


def test_setting_up_a_run_loads_neither_locust_nor_gevent(tmp_path: Path) -> None:
    # Its own interpreter: this one has imported whatever other tests needed.
    result = subprocess.run(
        [sys.executable, "-c", SETUP, str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
