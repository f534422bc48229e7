"""Recorder: rows on disk as they are taken, quiet end when the target goes, rows
that survive the writer being killed.
"""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest

from bench.holder import HolderSpec, ZombieHolder
from diagnostics.contract import SAMPLE_COLUMNS
from diagnostics.recorder import Recorder
from diagnostics.sampler import Sample
from tests import diag_helpers as h


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_records_one_flushed_row_per_sample(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "samples.csv"
    with ZombieHolder(HolderSpec(exits=[0, 0, 0], alive=1)) as holder:
        rec = Recorder(holder.pid, path, interval=0.01)
        rec.start()
        try:
            h.wait_until(lambda: len(lines(path)) >= 6, "five rows on disk")
            assert rec.latest is not None and rec.latest.zombies == 3
            final = rec.sample_now()
            assert final is not None and (final.zombies, final.alive) == (3, 1)
        finally:
            rec.stop()
            rec.stop()  # idempotent
        assert rec.sample_now() is None  # stopped: nothing more is written
    assert lines(path)[0].split(",") == list(SAMPLE_COLUMNS)
    table = rows(path)
    assert all(r["zombies"] == "3" and r["alive"] == "1" and r["children"] == "4" for r in table)
    times = [float(r["time"]) for r in table]
    assert times == sorted(times)
    assert not rec.target_gone and rec.error is None


def test_target_exit_ends_sampling_quietly(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    holder = ZombieHolder(HolderSpec(exits=[0])).start()
    rec = Recorder(holder.pid, path, interval=0.01)
    try:
        rec.start()
        h.wait_until(lambda: len(lines(path)) >= 2, "a row on disk")
        held = len(rows(path))  # taken while the holder still held its zombie
    finally:
        holder.release()
    assert rec.wait(h.DEADLINE_S), "the thread should end by itself"
    assert rec.target_gone and rec.error is None
    assert rec.sample_now() is None
    rec.stop()
    taken = rows(path)
    assert all(r["zombies"] == "1" for r in taken[:held])
    # The holder reaps its zombie just before it exits: a sample may fall between the two.
    assert all(r["zombies"] in ("0", "1") for r in taken[held:])


def test_missing_target_leaves_a_header_and_target_gone(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    rec = Recorder(h.MISSING_PID, path)
    rec.start()
    assert rec.wait(h.DEADLINE_S)
    rec.stop()
    assert rec.target_gone and rec.latest is None
    assert lines(path) == [",".join(SAMPLE_COLUMNS)]


def test_failing_callback_does_not_stop_sampling(tmp_path: Path) -> None:
    seen: list[Sample] = []

    def flaky(sample: Sample) -> None:
        seen.append(sample)
        raise RuntimeError("callback bug")

    with ZombieHolder(HolderSpec(alive=1)) as holder:
        rec = Recorder(holder.pid, tmp_path / "s.csv", interval=0.01, on_sample=flaky)
        with rec:
            h.wait_until(lambda: len(seen) >= 3, "three callbacks")
            assert not rec.wait(0)
            assert rec.error is None


def test_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Recorder(os.getpid(), tmp_path / "s.csv", interval=0)


def test_rows_survive_a_killed_writer(tmp_path: Path) -> None:
    """SIGKILL the recording process mid-run: every row but at most the last is whole."""
    path = tmp_path / "samples.csv"
    with ZombieHolder(HolderSpec(exits=[0, 1], alive=2)) as holder:
        writer = h.spawn(h.RECORD, str(holder.pid), str(path))
        try:
            assert writer.stdout is not None and writer.stdout.readline() == b"started\n"
            h.wait_until(lambda: len(lines(path)) >= 30, "rows from the writer")
            os.kill(writer.pid, signal.SIGKILL)
        finally:
            h.end_by_stdin(writer)
    assert writer.returncode == -signal.SIGKILL
    text = path.read_text()
    complete = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    assert complete[0].split(",") == list(SAMPLE_COLUMNS)
    assert len(complete) >= 30
    for line in complete[1:]:
        cells = line.split(",")
        assert len(cells) == len(SAMPLE_COLUMNS)
        row = dict(zip(SAMPLE_COLUMNS, cells, strict=True))
        assert (row["zombies"], row["alive"]) == ("2", "2")
        float(row["time"]), float(row["sample_cost_ms"])


def test_a_full_disk_ends_sampling_with_one_cause_told_once(tmp_path: Path) -> None:
    csv_path = tmp_path / "samples.csv"
    csv_path.symlink_to("/dev/full")  # every write: ENOSPC
    told: list[str] = []
    with ZombieHolder(HolderSpec(exits=[0])) as holder:
        rec = Recorder(holder.pid, csv_path, interval=0.005, on_error=told.append)
        with rec:
            assert rec.wait(h.DEADLINE_S), "sampling went on after the disk filled"
            assert rec.sample_now() is None
    assert rec.error == "disk full writing samples.csv"
    assert told == [rec.error]
    assert rec.latest is None


# A file-size limit makes the write that crosses it short and the next one fail (EFBIG),
# as a filling disk does: the recorder must cut the partial row back off.
_LIMITED_WRITER = """
import os, resource, signal, sys
from diagnostics.recorder import Recorder
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
rec = Recorder(os.getpid(), sys.argv[1], interval=0.005)
rec.start()
rec.wait(30)
rec.stop()
print(rec.error)
"""


def test_a_write_cut_short_leaves_only_whole_rows(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    proc = h.spawn(_LIMITED_WRITER, str(path))
    out, _ = proc.communicate(timeout=h.DEADLINE_S)
    assert out.decode().strip() == "file too large writing samples.csv"
    text = path.read_text()
    assert len(text) <= 1000 and text.endswith("\n")
    assert {len(line.split(",")) for line in text.splitlines()} == {len(SAMPLE_COLUMNS)}
    assert len(text.splitlines()) > 2
