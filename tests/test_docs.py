"""The docs a newcomer follows: every link resolves, and the reference's option lists are the
parsers' own (reaperlab/reference.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reaperlab import reference
from reaperlab.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.+)$", re.M)


def anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # no headings in code
    return {anchor(heading) for heading in HEADING.findall(text)}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:: not ours to check offline
        path, _, fragment = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            broken.append(f"{target}: no {where.relative_to(ROOT)}")
        elif fragment and where.suffix == ".md" and fragment not in anchors(where):
            broken.append(f"{target}: no heading #{fragment} in {where.name}")
    assert broken == []


def test_the_reference_lists_every_command() -> None:
    text = reference.REFERENCE.read_text()
    listed = {match["name"] for match in reference.BLOCK.finditer(text)}
    assert listed == {"reaperlab", *COMMANDS}


@pytest.mark.slow  # each command's --help, in a Python of its own
def test_the_reference_option_lists_are_the_parsers_own() -> None:
    assert reference.main(["--check"]) == 0, "run `make docs`"
