"""Writing records to a disk that may fill up: whole files or nothing, and a reason in words.

Every JSON record of a run (run.json, scenario.json, server.json) is written through
:func:`write_atomic`, so a reader sees the old file or the new one, never half of one, and
a failed write leaves no temporary file behind. A :class:`Reserve` is a little space taken
at the start of a run and given back when the disk fills, so that the final records (which
say what happened) can still be written after the samples have used the rest.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

RESERVE_BYTES = 32 * 1024
"""Room for the final scenario.json, server.json and run.json (each rewritten via a temp file)."""

_CAUSES = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def describe(error: OSError, doing: str) -> str:
    """One line naming the cause: "disk full writing samples.csv"."""
    cause = _CAUSES.get(error.errno or 0) or (error.strerror or str(error)).lower()
    return f"{cause} {doing}"


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


class Reserve:
    """A hidden file holding ``size`` bytes of a folder's file system until :meth:`release`."""

    def __init__(self, folder: Path, size: int = RESERVE_BYTES) -> None:
        self.path = Path(folder) / ".reserve"
        self.size = size

    def take(self) -> None:
        """Claim the space now; OSError (and nothing left behind) when it is not there."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, self.size)
            except OSError as error:
                if error.errno != errno.EOPNOTSUPP:
                    raise
                os.write(fd, bytes(self.size))  # a file system without fallocate
        except BaseException:
            os.close(fd)
            self.release()
            raise
        os.close(fd)

    def release(self) -> bool:
        """Give the space back; True if there was any to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


def write_atomic(path: Path, text: str, reserve: Reserve | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    On a full disk the reserve (if any) is given back and the write tried once more. On
    any failure, Ctrl-C included, the temporary file is removed and the old ``path`` (if
    any) stays as it was.
    """
    try:
        _write_via_temp(path, text.encode("utf-8"))
    except OSError as error:
        if not (is_disk_full(error) and reserve is not None and reserve.release()):
            raise
        _write_via_temp(path, text.encode("utf-8"))


def write_json(path: Path, data: dict[str, Any], reserve: Reserve | None = None) -> None:
    """Write a record as indented JSON, whole (see write_atomic): the one way every run
    record, bench record and live feed reaches the disk."""
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n", reserve)


def _write_via_temp(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
