"""The records' tolerant reader: a file from anywhere becomes a typed record and notes."""

from __future__ import annotations

import json
import math

from diagnostics.contract import RunRecord, ScenarioRecord, Status


def test_a_record_as_written_reads_back_whole_and_without_notes() -> None:
    written = ScenarioRecord(
        name="no-reaper",
        strategy="none",
        leak_client_fd=False,
        color_key=0,
        started=1000.5,
        capped=True,
        cap=100,
        capped_at=3.2,
        final_sample={"zombies": 100},
        zombie_holders=[{"pid": 7}],
        errors=["server died"],
    )
    assert ScenarioRecord.checked(written.to_json()) == (written, [])


def test_wrong_types_give_way_to_the_default_with_a_note_each() -> None:
    record, notes = ScenarioRecord.checked(
        {
            "name": "no-reaper",
            "started": 1000.0,
            "strategy": 3,
            "capped": "yes",
            "status": None,
            "final_sample": [1, 2],
            "errors": "boom",
        }
    )
    assert (record.strategy, record.capped, record.status) == (None, False, "running")
    assert record.final_sample is None and record.errors == []
    assert notes == [
        "strategy should be a string or null, not an integer (read as null)",
        "status should be one of "
        + ", ".join(f'"{status}"' for status in Status)
        + ', not null (read as "running")',
        "capped should be a boolean, not a string (read as false)",
        "final_sample should be an object or null, not an array (read as null)",
        "errors should be an array, not a string (read as [])",
    ]


def test_a_boolean_is_not_an_integer_but_an_integer_is_a_number() -> None:
    record, notes = ScenarioRecord.checked(
        {"name": "s", "started": 1000, "color_key": True, "cap": 2.5, "capped_at": 3}
    )
    assert record.started == 1000 and record.capped_at == 3  # JSON writes 3.0 as 3
    assert record.color_key is None and record.cap is None
    assert notes == [
        "color_key should be an integer or null, not a boolean (read as null)",
        "cap should be an integer or null, not a number (read as null)",
    ]
    assert RunRecord.checked(
        {"id": "r", "kind": "watch", "started": 1.0, "parameters": {}, "scenarios": [],
         "machine": {}, "subreaper": 1}
    )[1] == ["subreaper should be a boolean or null, not an integer (read as null)"]  # fmt: skip


def test_missing_required_fields_get_neutral_values_and_notes_not_an_exception() -> None:
    record, notes = RunRecord.checked({})
    assert (record.id, record.kind, record.parameters, record.scenarios) == ("", "", {}, [])
    assert math.isnan(record.started) and record.exit_status == "running"
    assert notes == [
        'id is missing (read as "")',
        'kind is missing (read as "")',
        "started is missing (read as unknown)",
        "parameters is missing (read as {})",
        "scenarios is missing (read as [])",
        "machine is missing (read as {})",
    ]
    scenario, notes = ScenarioRecord.checked({"status": "ok"})
    assert scenario.name == "" and scenario.status == "ok" and len(notes) == 2


def test_keys_of_a_newer_writer_are_left_out_silently() -> None:
    data = {"name": "s", "started": 1.0, "added_later": {"x": 1}}
    record, notes = ScenarioRecord.checked(data)
    assert record == ScenarioRecord(name="s", started=1.0) and notes == []


def test_containers_are_checked_one_level_deep() -> None:
    data = {"name": "s", "started": 1.0, "zombie_holders": [1, "x"], "sigchld_handled": {"1": 2}}
    record, notes = ScenarioRecord.checked(data)
    assert record.zombie_holders == [1, "x"] and record.sigchld_handled == {"1": 2}
    assert notes == []


def test_a_status_reads_back_as_its_named_member_and_an_unknown_word_gives_way() -> None:
    record, notes = ScenarioRecord.checked({"name": "s", "started": 1.0, "status": "capped"})
    assert record.status is Status.CAPPED and notes == []
    assert ScenarioRecord.from_json({"name": "s", "started": 1.0, "status": "ok"}).status is (
        Status.OK
    )
    record, notes = ScenarioRecord.checked({"name": "s", "started": 1.0, "status": "odd"})
    assert record.status is Status.RUNNING
    assert len(notes) == 1 and notes[0].startswith('status should be one of "running", "ok"')
    assert notes[0].endswith(', not "odd" (read as "running")')


def test_a_status_is_written_as_its_word() -> None:
    data = json.loads(json.dumps(ScenarioRecord(name="s", started=1.0, status=Status.OK).to_json()))
    assert data["status"] == "ok"
