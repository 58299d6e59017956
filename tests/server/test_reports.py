from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from footfall.server.query import reports
from footfall.server.stores.base import EventRecord
from footfall.server.stores.memory import MemoryStore

TODAY = dt.date(2026, 11, 28)


def event(day_offset: int, name: str, install: str, session: str, app: str = "tool") -> EventRecord:
    moment = dt.datetime.combine(TODAY - dt.timedelta(days=day_offset), dt.time(10, 0))
    return EventRecord(
        moment,
        moment,
        app,
        "1.0",
        name,
        install,
        session,
        "linux",
        "6.1",
        "x86_64",
        "cpython",
        "3.12",
        "",
        "",
        "",
        "{}",
        "native",
    )


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    memory = MemoryStore()
    memory.write(
        [
            event(0, "command", "i1", "s1"),
            event(0, "command", "i1", "s1"),
            event(0, "error", "i2", "s2"),
            event(2, "command", "i1", "s3"),
            event(2, "start", "", "s4"),  # no-id mode: counted, not an install
            event(6, "command", "i3", "s5"),  # outside a 5-day window
            event(0, "command", "other", "s9", app="other-tool"),  # another app
        ]
    ).result(timeout=30)
    yield memory
    memory.close()


def test_summary_counts_within_the_window(store: MemoryStore) -> None:
    result = reports.summary(store, "tool", days=5, today=TODAY)
    assert (result["events"], result["installs"], result["runs"]) == (5, 2, 4)
    assert (result["start"], result["end"]) == ("2026-11-24", "2026-11-28")


def test_summary_fills_every_day(store: MemoryStore) -> None:
    per_day = reports.summary(store, "tool", days=5, today=TODAY)["per_day"]
    assert [d["day"] for d in per_day] == [
        "2026-11-24",
        "2026-11-25",
        "2026-11-26",
        "2026-11-27",
        "2026-11-28",
    ]
    assert [d["events"] for d in per_day] == [0, 0, 2, 0, 3]
    assert [d["installs"] for d in per_day] == [0, 0, 1, 0, 2]


def test_top_events_are_ordered(store: MemoryStore) -> None:
    top = reports.summary(store, "tool", days=7, today=TODAY)["top_events"]
    assert top == [
        {"name": "command", "events": 4},
        {"name": "error", "events": 1},
        {"name": "start", "events": 1},
    ]


def test_an_app_without_events_reports_zeros(store: MemoryStore) -> None:
    result = reports.summary(store, "nothing-here", days=3, today=TODAY)
    assert (result["events"], result["installs"], result["top_events"]) == (0, 0, [])
    assert len(result["per_day"]) == 3
