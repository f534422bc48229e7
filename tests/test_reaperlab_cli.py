"""The ``reaperlab`` console command: each subcommand is its ``python -m`` form."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reaperlab.cli import COMMANDS
from tests.server_helpers import REAPERLAB_SERVE

REAPERLAB = REAPERLAB_SERVE[0]

HELP_SAYS = {
    "loadtest": "usage: python -m loadtest",
    "serve": "usage: python -m server",
    "doctor": "usage: python -m diagnostics doctor",
    "watch": "usage: python -m diagnostics watch",
    "exporter": "usage: python -m diagnostics exporter",
    "report": "usage: python -m reports",
    "bench": "usage: python -m bench",
}


def reaperlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REAPERLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_help_lists_every_command_with_one_line(tmp_path: Path) -> None:
    result = reaperlab("--help", cwd=tmp_path)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    for name in COMMANDS:
        assert sum(line.split()[:1] == [name] for line in lines) == 2  # summary, python -m form
    assert set(HELP_SAYS) == set(COMMANDS)


HEAVY = {"loadtest", "report", "bench"}
"""These import their whole stack (matplotlib among it) before --help answers: 0.6 to 2 s a
run, so only `make test` runs them."""


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name for name in HELP_SAYS],
)
def test_each_command_is_its_python_m_form(tmp_path: Path, name: str) -> None:
    # From a directory with a folder named like our packages: -P keeps it off sys.path.
    for package in ("server", "loadtest", "diagnostics", "reports"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__main__.py").write_text("print('shadowed')")
    result = reaperlab(name, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(HELP_SAYS[name])


def test_doctor_all_runs_from_any_directory(tmp_path: Path) -> None:
    result = reaperlab("doctor", "--all", "--json", "--watch", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    parents = json.loads(result.stdout)["parents"]
    assert all({"pid", "zombies", "verdict"} <= set(parent) for parent in parents)


def test_exit_statuses_pass_through(tmp_path: Path) -> None:
    result = reaperlab("doctor", "4194305", "--watch", "0", cwd=tmp_path)  # above any pid_max
    assert result.returncode == 2
    assert result.stderr.startswith("diagnostics: error:")


@pytest.mark.parametrize("args", [[], ["frobnicate"]])
def test_a_missing_or_unknown_command_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    result = reaperlab(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert ("unknown command 'frobnicate'" in result.stderr) == bool(args)
