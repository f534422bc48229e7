"""The live view's load figures, from the request timeline Locust writes ten times a second.

Locust's own history has one row a second and its "Requests/s" is a trailing average
that reads 0 for the first seconds while requests already count in the hundreds; the
timeline (loadtest/in_locust/timeline.py) gives the running totals as of a tenth of a
second ago, so the rate is right from the first second and the request count keeps
pace with the zombie count the sampler reads at the same moment.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from diagnostics.contract import REQUEST_COLUMNS, REQUESTS
from loadtest.load import LoadProgress

RATE_WINDOW_S = 1.0
"""The rate is over the last second of rows (or all of them, early on)."""


class TimelineReader:
    """Reads the rows appended since the last call; never re-reads the whole file."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / REQUESTS
        self._offset = 0
        self._partial = ""
        self._rows: deque[tuple[float, int, int]] = deque()

    def read(self) -> LoadProgress:
        self._read_new_rows()
        if not self._rows:
            return LoadProgress(None, None, None)
        t, requests, failures = self._rows[-1]
        t0, requests0, _ = self._rows[0]
        rps = (requests - requests0) / (t - t0) if t - t0 >= 0.2 else None
        return LoadProgress(requests, failures, rps)

    def _read_new_rows(self) -> None:
        try:
            with self._path.open("r", encoding="utf-8") as file:
                file.seek(self._offset)
                text = file.read()
                self._offset = file.tell()
        except OSError:
            return
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()  # a row not yet finished by the writer
        for line in lines:
            cells = line.strip().split(",")
            if len(cells) != len(REQUEST_COLUMNS) or cells[0] == REQUEST_COLUMNS[0]:
                continue
            try:
                row = (float(cells[0]), int(cells[1]), int(cells[2]))
            except ValueError:
                continue
            self._rows.append(row)
        while len(self._rows) > 1 and self._rows[-1][0] - self._rows[1][0] >= RATE_WINDOW_S:
            self._rows.popleft()
