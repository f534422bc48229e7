"""diagnostics/diskio.py: records written whole or not at all, and the reserve that lets
the last records be written on a disk the samples filled."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from diagnostics.diskio import Reserve, describe, write_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text("old\n")
    (tmp_path / "run.json.tmp").mkdir()  # the temporary cannot be opened as a file
    with pytest.raises(IsADirectoryError):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    (tmp_path / "run.json.tmp").rmdir()
    write_atomic(path, "new\n")
    assert path.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "run.json"
    ]


def test_the_reserve_holds_space_until_released(tmp_path: Path) -> None:
    reserve = Reserve(tmp_path, size=8192)
    reserve.take()
    assert reserve.path.stat().st_blocks * 512 >= 8192
    assert reserve.release() is True
    assert reserve.release() is False and not reserve.path.exists()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, "disk full writing samples.csv"),
        (errno.EDQUOT, "disk quota exceeded writing samples.csv"),
        (errno.EACCES, "permission denied writing samples.csv"),
    ],
)
def test_causes_are_named_in_words(code: int, expected: str) -> None:
    assert describe(OSError(code, os.strerror(code)), "writing samples.csv") == expected
