"""Run the harness with every write to a scenario record traced to the thread that made it.

``python -m tests.record_guard REPORT [loadtest flags...]`` runs ``python -m loadtest``'s
``main`` in this process, with ScenarioRecord patched so that each write is noted with its
thread: assigning a field, and changing a list or dict the record holds (its warnings, its
cgroup figures). The record as a dict (``to_json``, what an older harness wrote into) is
traced the same way. REPORT gets ``{"owner_writes": n, "other_writes": [[thread, what],
...]}``: writes from the thread that made the record, and every write from any other.

Its own process, because the patch must not reach other tests and the harness takes
signals and becomes a subreaper; tests/test_loadtest_record.py runs it.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from diagnostics import contract
from loadtest.__main__ import main as loadtest_main

_owners: dict[int, int] = {}
"""The thread that made each record (by the record's id: its class has slots)."""
owner_writes = Counter[str]()
other_writes: list[tuple[str, str]] = []
_lock = threading.Lock()


def _note(owner: int | None, what: str) -> None:
    thread = threading.current_thread()
    with _lock:
        if owner is None or owner == thread.ident:
            owner_writes[what] += 1
        else:
            other_writes.append((thread.name, what))


def _traced(base: type, methods: tuple[str, ...]) -> type:
    """A subclass of ``base`` whose mutating ``methods`` note the writing thread first."""

    def traced(name: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            key = f"[{args[0]!r}]" if name == "__setitem__" else ""
            _note(self.owner, f"{base.__name__}.{name}{key}")
            return getattr(base, name)(self, *args, **kwargs)

        return method

    namespace = {"owner": None, **{name: traced(name) for name in methods}}
    return type(f"Traced{base.__name__}", (base,), namespace)


TracedList = _traced(
    list,
    ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
     "__setitem__", "__delitem__", "__iadd__"),
)  # fmt: skip
TracedDict = _traced(
    dict,
    ("__setitem__", "__delitem__", "update", "setdefault", "pop", "popitem", "clear", "__ior__"),
)


def _traced_value(value: Any, owner: int | None) -> Any:
    if type(value) is list:
        value = TracedList(value)
    elif type(value) is dict:
        value = TracedDict(value)
    else:
        return value
    value.owner = owner
    return value


def _setattr(record: contract.ScenarioRecord, name: str, value: Any) -> None:
    owner = _owners.setdefault(id(record), threading.get_ident())
    _note(owner, f"field {name}")
    object.__setattr__(record, name, _traced_value(value, owner))


_to_json = contract.ScenarioRecord.to_json


def _traced_json(record: contract.ScenarioRecord) -> dict[str, Any]:
    """The record as a dict, traced as the record is (whoever writes into the dict)."""
    data = _to_json(record)
    traced = TracedDict(data)
    traced.owner = _owners.get(id(record))
    return traced


def main(argv: list[str]) -> int:
    report, harness_args = Path(argv[0]), argv[1:]
    contract.ScenarioRecord.__setattr__ = _setattr  # type: ignore[method-assign,assignment]
    contract.ScenarioRecord.to_json = _traced_json  # type: ignore[method-assign,assignment]
    try:
        return loadtest_main(harness_args)
    finally:
        report.write_text(
            json.dumps({"owner_writes": sum(owner_writes.values()), "other_writes": other_writes})
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
