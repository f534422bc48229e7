"""The environment the suite runs in is the one uv.lock describes (``make install``)."""

from __future__ import annotations

import importlib.metadata
import tomllib

from tests.server_helpers import ROOT


def locked_versions() -> dict[str, set[str]]:
    """Name -> the versions uv.lock pins from the registry (one per Python range it forks on)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        if "registry" in package.get("source", {}):
            versions.setdefault(package["name"], set()).add(package["version"])
    return versions


def test_every_installed_dependency_is_the_locked_version() -> None:
    locked = locked_versions()
    assert "locust" in locked  # the harness reads its CSV columns and options
    installed = {}
    for name in locked:
        try:
            installed[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # locked for another platform or Python (environment markers)
    assert {installed["locust"]} == locked["locust"]
    assert {name: v for name, v in installed.items() if v not in locked[name]} == {}
