"""Tolerant readers for the files of a run directory.

A run stopped by Ctrl-C leaves files missing, empty or cut in the middle of a line. Each
reader here returns what it could read together with a `FileState` saying why the rest is
absent, so the report draws what is there and marks what is not instead of raising.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")


class FileState(StrEnum):
    """Why a file did or did not yield data."""

    OK = "ok"
    MISSING = "missing"
    EMPTY = "empty"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Read(Generic[T]):
    """The outcome of reading one file: its value (None unless OK) and a reason for the report."""

    value: T | None
    state: FileState
    detail: str = ""


@dataclass(frozen=True)
class Table:
    """A CSV file as text cells, keeping only rows that were written completely."""

    header: tuple[str, ...]
    rows: list[list[str]]
    dropped_rows: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def has(self, name: str) -> bool:
        return name in self.header

    def texts(self, name: str) -> list[str]:
        """One column as strings; an absent column reads as blank cells."""
        if name not in self.header:
            return [""] * len(self.rows)
        i = self.header.index(name)
        return [row[i] for row in self.rows]

    def numbers(self, name: str) -> np.ndarray:
        """One column as floats; a blank or unparseable cell (e.g. Locust's "N/A") is NaN."""
        return np.array([to_float(cell) for cell in self.texts(name)], dtype=float)

    def where(self, name: str, value: str) -> Table:
        """The rows whose cell in column `name` equals `value`."""
        keep = [row for row, cell in zip(self.rows, self.texts(name), strict=True) if cell == value]
        return Table(self.header, keep, self.dropped_rows)


def to_float(cell: object) -> float:
    """A number from a CSV cell or JSON value; NaN when it is not a finite number."""
    if isinstance(cell, bool):
        return math.nan
    try:
        value = float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def _read_text(path: Path) -> Read[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Read(None, FileState.MISSING, f"{path.name} is missing")
    except OSError as exc:
        return Read(None, FileState.UNREADABLE, f"{path.name}: {exc.strerror or exc}")
    # A file cut by a crash can carry NUL padding; the csv module rejects NUL bytes.
    text = raw.decode("utf-8", errors="replace").replace("\x00", "")
    if not text.strip():
        return Read(None, FileState.EMPTY, f"{path.name} is empty")
    return Read(text, FileState.OK)


def read_table(path: Path) -> Read[Table]:
    """Read a CSV file, dropping rows a writer did not finish.

    A row is unfinished when its field count differs from the header's, or when it is the
    last row and the file does not end with a newline (its last number may be cut short).
    """
    text = _read_text(path)
    if text.value is None:
        return Read(None, text.state, text.detail)
    try:
        records = [row for row in csv.reader(io.StringIO(text.value)) if row]
    except csv.Error as exc:
        return Read(None, FileState.UNREADABLE, f"{path.name}: {exc}")
    header, body = tuple(records[0]), records[1:]
    if body and not text.value.endswith(("\n", "\r")):
        body = body[:-1]
        cut = 1
    else:
        cut = 0
    complete = [row for row in body if len(row) == len(header)]
    dropped = cut + len(body) - len(complete)
    detail = f"{path.name}: dropped {dropped} incomplete row(s)" if dropped else ""
    return Read(Table(header, complete, dropped), FileState.OK, detail)


def read_json_object(path: Path) -> Read[dict[str, Any]]:
    """Read a JSON file that must hold an object (run.json, scenario.json, server.json)."""
    text = _read_text(path)
    if text.value is None:
        return Read(None, text.state, text.detail)
    try:
        value = json.loads(text.value)
    except ValueError:
        return Read(None, FileState.UNREADABLE, f"{path.name} is not valid JSON (half-written?)")
    if not isinstance(value, dict):
        return Read(None, FileState.UNREADABLE, f"{path.name} does not hold a JSON object")
    return Read(value, FileState.OK)
