"""The live views name the most frequent failure reason, so a failing load is seen at once."""

from __future__ import annotations

import pytest

from diagnostics.contract import Phase
from loadtest.live import PlainView, Progress


def progress(top_failure: str | None) -> Progress:
    return Progress("external", Phase.LOAD, 1.0, 3.0, 40.0, 100, 100, 0, 0, 4, 0.2, top_failure)


def test_the_plain_view_names_the_top_failure(capsys: pytest.CaptureFixture[str]) -> None:
    PlainView().update(progress("status 404 (expected 200) (x100)"))
    line = capsys.readouterr().out.strip()
    assert line.endswith("top_failure='status 404 (expected 200) (x100)'")


def test_no_failure_no_mention(capsys: pytest.CaptureFixture[str]) -> None:
    PlainView().update(progress(None))
    assert "top_failure" not in capsys.readouterr().out
