"""A scenario's JSON files on disk: scenario.json (rewritten as the scenario goes, so a
run killed outright still says what it was doing), server.json, and under --web the
Zombies tab's live.json (rewritten every tick).

Each file is replaced whole (diagnostics.diskio.write_json), drawing on the run's
reserve when the disk is full, so a reader never finds half a record. A failure is told
once: a disk that stays full would otherwise fail every later save in the same words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diagnostics.diskio import Reserve, describe, write_json


class ScenarioFiles:
    """One stream of writes whose failure is told once (the records are one, the live
    feed another: a feed that cannot be written must not silence a record that cannot)."""

    def __init__(self, folder: Path, reserve: Reserve | None) -> None:
        self.folder = folder
        self.reserve = reserve
        self.failure: str | None = None
        """The first write that failed, in one line; None while every write has worked."""

    def write(self, name: str, data: dict[str, Any]) -> str | None:
        """Write ``name``; the one-line failure if this is the first write to fail, else None."""
        try:
            write_json(self.folder / name, data, self.reserve)
        except OSError as error:
            if self.failure is None:
                self.failure = describe(error, f"writing {name}")
                return self.failure
        return None
