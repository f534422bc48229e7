"""The alerting rules shipped with the exporter: valid for Prometheus (``promtool check
rules``), behaving as their unit tests say (``promtool test rules``), and written against
series the exporter really serves.

promtool comes with Debian's ``prometheus`` package (.ci/run installs it where it can);
without it these tests skip and say so.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from diagnostics.exporter import RULES, SPECS

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus)"
)
RULES_TEST = RULES.with_name("rules_test.yml")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=RULES.parent
    )


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


@needs_promtool
def test_promtool_runs_the_rules_unit_tests() -> None:
    result = promtool("test", "rules", RULES_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def served_names() -> set[str]:
    """Every series name the exporter can serve (a counter's with _total)."""
    names = set()
    for spec in SPECS.values():
        suffix = {"counter": "_total", "info": "_info"}.get(spec.kind, "")
        names.add(spec.name + suffix)
    return names


def test_the_rules_ask_only_for_series_the_exporter_serves() -> None:
    asked = set(re.findall(r"\breaperlab_[a-z_]+\b", RULES.read_text()))
    assert asked, "no reaperlab_ series in the rules"
    assert asked <= served_names(), asked - served_names()
    assert RULES_TEST.exists()
