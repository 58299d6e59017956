"""The named reports and the summary, on each store (`on_every_store`); the public page and the
charts they feed (no store)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from footfall.server.edge.dashboard import public_page
from footfall.server.query import reports
from footfall.server.query.filters import Filters, PropertyFilter, today
from footfall.server.stores.base import EventRecord, EventStore
from footfall.server.stores.memory import MemoryStore
from tests.stores import StoreFactory, on_every_store

TODAY = dt.date(2026, 11, 28)


def event(
    day_offset: int,
    name: str,
    install: str,
    session: str,
    app: str = "tool",
    *,
    at: dt.datetime | None = None,
    version: str = "1.0",
    country: str = "",
    os: str = "linux",
    os_version: str = "6.1",
    runtime_version: str = "3.12",
    props: dict[str, Any] | None = None,
    source: str = "native",
) -> EventRecord:
    moment = at or dt.datetime.combine(TODAY - dt.timedelta(days=day_offset), dt.time(10, 0))
    return EventRecord(
        moment,
        moment,
        app,
        version,
        name,
        install,
        session,
        os,
        os_version,
        "x86_64",
        "cpython",
        runtime_version,
        "",
        "",
        country,
        json.dumps(props or {}),
        source,
    )


def last(days: int, end: dt.date = TODAY, **changes: Any) -> Filters:
    return Filters(start=end - dt.timedelta(days=days - 1), end=end, **changes)


Fill = Callable[..., EventStore]


@pytest.fixture
def fill(store_factory: StoreFactory, tmp_path: Path) -> Iterator[Fill]:
    """`fill(*events)`: a new store of `store_kind` holding the events; closed after the test."""
    opened: list[EventStore] = []

    def make(*events: EventRecord) -> EventStore:
        folder = tmp_path / f"store{len(opened)}"
        folder.mkdir()
        store = store_factory(folder)
        opened.append(store)
        store.write(list(events)).result(timeout=30)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(fill: Fill) -> EventStore:
    return fill(
        event(0, "command", "i1", "s1", country="DE"),
        event(0, "command", "i1", "s1", country="DE"),
        event(0, "error", "i2", "s2", country="FR", version="2.0"),
        event(2, "command", "i1", "s3", country="DE"),
        event(2, "start", "", "s4"),  # no-id mode: counted, not an install
        event(6, "command", "i3", "s5"),  # outside a 5-day window
        event(0, "command", "other", "s9", app="other-tool"),  # another app
    )


@on_every_store
def test_summary_counts_within_the_window(store: EventStore) -> None:
    result = reports.summary(store, "tool", last(5))
    assert (result["events"], result["installs"], result["runs"]) == (5, 2, 4)
    assert (result["start"], result["end"]) == ("2026-11-24", "2026-11-28")


@on_every_store
def test_summary_applies_every_filter(store: EventStore) -> None:
    """It ignored --country, --version, --ci, --container and the range: the unfiltered total under a filter."""
    german = reports.summary(store, "tool", last(5, country="DE"))
    assert (german["events"], german["installs"], german["runs"]) == (3, 1, 2)
    assert german["top_events"] == [{"name": "command", "events": 3}]
    assert german["filters"]["country"] == "DE"
    version_two = reports.summary(store, "tool", last(5, version="2.0"))
    assert (version_two["events"], version_two["installs"]) == (1, 1)
    assert reports.summary(store, "tool", last(5, ci="only"))["events"] == 0
    assert reports.summary(store, "tool", last(5, container="docker"))["events"] == 0
    two_days_ago = reports.summary(store, "tool", Filters(TODAY - dt.timedelta(days=2), TODAY - dt.timedelta(days=2)))
    assert (two_days_ago["events"], [d["events"] for d in two_days_ago["per_day"]]) == (2, [2])


@on_every_store
def test_summary_fills_every_day(store: EventStore) -> None:
    per_day = reports.summary(store, "tool", last(5))["per_day"]
    assert [d["day"] for d in per_day] == [
        "2026-11-24",
        "2026-11-25",
        "2026-11-26",
        "2026-11-27",
        "2026-11-28",
    ]
    assert [d["events"] for d in per_day] == [0, 0, 2, 0, 3]
    assert [d["installs"] for d in per_day] == [0, 0, 1, 0, 2]


@on_every_store
def test_top_events_are_ordered(store: EventStore) -> None:
    top = reports.summary(store, "tool", last(7))["top_events"]
    assert top == [
        {"name": "command", "events": 4},
        {"name": "error", "events": 1},
        {"name": "start", "events": 1},
    ]


@on_every_store
def test_an_app_without_events_reports_zeros(store: EventStore) -> None:
    result = reports.summary(store, "nothing-here", last(3))
    assert (result["events"], result["installs"], result["top_events"]) == (0, 0, [])
    assert len(result["per_day"]) == 3


@on_every_store
def test_top_lists_order_by_their_measure_not_the_second_column(fill: Fill) -> None:
    """Platforms sorted by OS version, runtimes by Python version and GA by action: the busiest could fall off."""
    rows = [
        # one install on os 9.9 (sorts first by os_version), three on 1.0
        event(0, "start", "a1", "s1", os_version="9.9", runtime_version="3.99"),
        *(event(0, "start", f"b{i}", f"t{i}", os_version="1.0", runtime_version="3.1") for i in range(3)),
        *(
            event(0, "event", "", f"g{i}", props={"category": "c", "action": "a", "label": "x"}, source="ga-v1")
            for i in range(3)
        ),
        event(0, "event", "", "g9", props={"category": "c", "action": "z", "label": "x"}, source="ga-v1"),
    ]
    store = fill(*rows)
    platforms = reports.run_report(store, "platforms", "tool", last(1))
    assert platforms.rows[:2] == [["linux", "1.0", "x86_64", 3], ["linux", "9.9", "x86_64", 1]]
    runtimes = reports.run_report(store, "runtimes", "tool", last(1))
    assert runtimes.rows[:2] == [["cpython", "3.1", 3], ["cpython", "3.99", 1]]
    ga = reports.run_report(store, "ga", "tool", last(1))
    assert ga.rows == [["c", "a", "x", 3], ["c", "z", "x", 1]]


@on_every_store
def test_ties_break_by_the_other_measures_then_the_labels(fill: Fill) -> None:
    store = fill(
        # b and a: 2 events each; b has 2 installs, a has 1 -> b first; c and d tie wholly -> by name
        event(0, "b", "i1", "s1"),
        event(0, "b", "i2", "s2"),
        event(0, "a", "i3", "s3"),
        event(0, "a", "i3", "s3"),
        event(0, "d", "i4", "s4"),
        event(0, "c", "i5", "s5"),
    )
    assert reports.run_report(store, "events", "tool", last(1)).rows == [
        ["b", 2, 2],
        ["a", 2, 1],
        ["c", 1, 1],
        ["d", 1, 1],
    ]


@on_every_store
def test_durations_are_ordered_by_bucket(fill: Fill) -> None:
    counts = {"<1s": 1, "1-10s": 5, "10-60s": 2, ">1h": 9, "weird": 20}
    store = fill(
        *(
            event(0, "command", f"i{bucket}{n}", f"s{bucket}{n}", props={"command": "x", "duration": bucket})
            for bucket, count in counts.items()
            for n in range(count)
        )
    )
    rows = reports.run_report(store, "durations", "tool", last(1)).rows
    assert rows == [["<1s", 1], ["1-10s", 5], ["10-60s", 2], [">1h", 9], ["weird", 20]]


@on_every_store
def test_blank_versions_and_oses_are_labelled_not_empty(fill: Fill) -> None:
    store = fill(
        event(0, "start", "i1", "s1", version="", os=""),
        event(0, "start", "i2", "s2", version="1.0"),
    )
    versions = reports.run_report(store, "versions", "tool", last(1))
    assert [row[0] for row in versions.rows] == ["1.0", reports.UNKNOWN]
    assert versions.meta["latest"] == "1.0"
    adoption = reports.run_report(store, "adoption", "tool", last(1))
    assert sorted(row[1] for row in adoption.rows) == [reports.UNKNOWN, "1.0"]
    platforms = reports.run_report(store, "platforms", "tool", last(1))
    assert sorted(row[0] for row in platforms.rows) == [reports.UNKNOWN, "linux"]
    assert all(cell != "" for row in platforms.rows for cell in row)


def test_the_public_page_labels_blanks_and_headings() -> None:
    from footfall.server.query.public import UNKNOWN_VALUE

    assert UNKNOWN_VALUE == reports.UNKNOWN
    window = {
        "days": 30,
        "start": "2026-10-30",
        "end": "2026-11-28",
        "installs": 50,
        "events": 500,
        "noise": {"threshold_installs": 10, "installs_error_95": 3, "events_error_95": 9},
        "items": {
            "versions": [{"value": UNKNOWN_VALUE, "installs": 50, "events": 500}],
            "os": [{"value": "linux", "installs": 50, "events": 500}],
            "countries": [
                {"value": "DE", "installs": 30, "events": 300},
                {"value": "A1", "installs": 20, "events": 200},
            ],
        },
    }
    data = {
        "app": "tool",
        "release": "2026-11-29",
        "through": "2026-11-28",
        "privacy": {
            "epsilon": 1.0,
            "delta": 1e-6,
            "max_values_per_install": 1,
            "max_events_per_install_day": 100,
            "max_events_per_install_window": 1000,
            "totals_from": "os",
        },
        "windows": [window],
    }
    page = public_page(data)
    assert "<h3>OS</h3>" in page and "<h3>Os</h3>" not in page
    assert "(unknown)" in page
    assert "Germany (DE)" in page, "countries by name, as on the dashboard"
    assert '<td class="">A1</td>' in page, "a code with no name (an anonymous proxy) stays as it is"


# -- partial periods ---------------------------------------------------------------------


def _now_events() -> list[EventRecord]:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    return [
        event(0, "start", "i1", "s1", at=now - dt.timedelta(minutes=1)),
        event(0, "start", "i2", "s2", at=now - dt.timedelta(days=8)),
        event(0, "start", "i2", "s3", at=now - dt.timedelta(minutes=2)),
    ]


@on_every_store
def test_today_and_this_week_are_marked_partial(fill: Fill) -> None:
    """Today's partial day and the current week were drawn as if complete (the retention diagonal dropped)."""
    store = fill(*_now_events())
    current = today()
    series = reports.run_report(store, "timeseries", "tool", last(14, current))
    assert series.meta["partial"] == [current]
    assert series.as_json("tool", last(14, current))["partial"] == [current.isoformat()]
    hourly = reports.run_report(store, "timeseries", "tool", last(1, current))
    assert len(hourly.meta["partial"]) == 1 and hourly.meta["partial"][0].date() == current
    assert reports.run_report(store, "overview", "tool", last(14, current)).meta["partial"] == [current]
    earlier = current - dt.timedelta(days=1)
    assert reports.run_report(store, "timeseries", "tool", last(14, earlier)).meta["partial"] == []
    retention = reports.run_report(store, "retention", "tool", last(28, current))
    this_week = reports.week_start(current)
    assert this_week in retention.meta["partial"]
    assert reports.summary(store, "tool", last(7, current))["partial"] == [current.isoformat()]


# -- time zones --------------------------------------------------------------------------

BERLIN = "Europe/Berlin"
DST_DAY = dt.date(2026, 3, 29)  # clocks go from 02:00 CET to 03:00 CEST


@on_every_store
def test_reports_bucket_in_the_apps_time_zone_across_a_dst_change(fill: Fill) -> None:
    utc_times = [
        dt.datetime(2026, 3, 28, 22, 59, 59),  # 23:59:59 CET on the 28th
        dt.datetime(2026, 3, 28, 23, 0, 0),  # 00:00:00 CET on the 29th
        dt.datetime(2026, 3, 29, 0, 59, 59),  # 01:59:59 CET
        dt.datetime(2026, 3, 29, 1, 0, 0),  # 03:00:00 CEST: 02:00 never happens
        dt.datetime(2026, 3, 29, 21, 59, 59),  # 23:59:59 CEST
        dt.datetime(2026, 3, 29, 22, 0, 0),  # 00:00:00 CEST on the 30th (a Monday: a new week)
    ]
    store = fill(*(event(0, "start", f"i{n}", f"s{n}", at=moment) for n, moment in enumerate(utc_times)))
    berlin = Filters(dt.date(2026, 3, 28), dt.date(2026, 3, 30), timezone=BERLIN)
    per_day = reports.summary(store, "tool", berlin)["per_day"]
    assert [d["events"] for d in per_day] == [1, 4, 1]
    daily = reports.run_report(store, "timeseries", "tool", dataclasses.replace(berlin, end=dt.date(2026, 4, 1)))
    assert [row[1] for row in daily.rows[:3]] == [1, 4, 1]
    utc = Filters(dt.date(2026, 3, 28), dt.date(2026, 3, 30))
    assert [d["events"] for d in reports.summary(store, "tool", utc)["per_day"]] == [2, 4, 0]
    hourly = reports.run_report(store, "timeseries", "tool", Filters(DST_DAY, DST_DAY, timezone=BERLIN))
    by_hour = {row[0].hour: row[1] for row in hourly.rows if row[1]}
    assert by_hour == {0: 1, 1: 1, 3: 1, 23: 1}
    heat = reports.run_report(store, "heatmap", "tool", berlin)
    assert heat.rows == [[1, 0, 1], [6, 23, 1], [7, 0, 1], [7, 1, 1], [7, 3, 1], [7, 23, 1]]
    assert "Europe/Berlin" in heat.title
    cohorts = reports.run_report(store, "retention", "tool", berlin)
    assert {row[0] for row in cohorts.rows} == {dt.date(2026, 3, 23), dt.date(2026, 3, 30)}
    adoption = reports.run_report(store, "adoption", "tool", berlin)
    assert [(row[0], row[2]) for row in adoption.rows] == [
        (dt.date(2026, 3, 28), 1),
        (dt.date(2026, 3, 29), 4),
        (dt.date(2026, 3, 30), 1),
    ]


@on_every_store
def test_runs_under_a_property_filter_count_the_runs_with_a_matching_event(fill: Fill) -> None:
    """A run counted only where it starts showed 0 runs for `export.format=csv`: the export is rarely first."""
    store = fill(
        event(0, "start", "i1", "s1"),
        event(0, "export", "i1", "s1", props={"format": "csv"}),
        event(0, "start", "i2", "s2"),
        event(0, "export", "i2", "s2", props={"format": "json"}),
    )
    csv_only = last(1, properties=(PropertyFilter("export", "format", "csv"),))
    overview = reports.run_report(store, "overview", "tool", csv_only)
    assert overview.rows[0][:2] == ["events", 1] and overview.rows[1][:2] == ["runs", 1]
    hours = reports.run_report(store, "timeseries", "tool", csv_only).rows
    assert [sum(row[i] for row in hours) for i in (1, 2, 3)] == [1, 1, 1]


def test_charts_draw_partial_periods_apart() -> None:
    from footfall.server.edge import charts

    days = [dt.date(2026, 11, 26), dt.date(2026, 11, 27), dt.date(2026, 11, 28)]
    whole = charts.line_chart(days, {"events": [5, 6, 1]}, "events")
    assert "stroke-dasharray" not in whole and 'class="partial"' not in whole
    marked = charts.line_chart(days, {"events": [5, 6, 1]}, "events", partial=[days[-1]])
    assert marked.count("<polyline") == 2 and marked.count("stroke-dasharray") == 1
    assert 'class="partial"' in marked and "Nov 28: not over yet" in marked
    monday = dt.date(2026, 11, 23)
    rows = [[monday - dt.timedelta(weeks=1), 0, 4, 1.0], [monday - dt.timedelta(weeks=1), 1, 1, 0.25]]
    table = charts.cohort_table(rows, "retention", partial=[monday])
    assert "25%*" in table and "not over" in table and "100%*" not in table
    assert "*" not in charts.cohort_table(rows, "retention")


@on_every_store
def test_days_to_upgrade_follow_the_filters(fill: Fill) -> None:
    """The median days to upgrade ignored every filter but the range: `--country FR` showed Germany's upgrades."""
    released = dt.datetime(2026, 11, 1, 12)
    store = fill(
        event(0, "start", "first", "s0", at=released - dt.timedelta(days=30), version="1.0", country="DE"),
        event(0, "start", "first", "s1", at=released, version="2.0", country="DE"),  # the release of 2.0
        event(0, "start", "de", "s2", at=released - dt.timedelta(days=20), version="1.0", country="DE"),
        event(0, "start", "de", "s3", at=released + dt.timedelta(days=2), version="2.0", country="DE"),
        event(0, "start", "fr", "s4", at=released - dt.timedelta(days=20), version="1.0", country="FR"),
        event(0, "start", "fr", "s5", at=released + dt.timedelta(days=6), version="2.0", country="FR"),
    )
    november = Filters(dt.date(2026, 11, 1), dt.date(2026, 11, 28))
    assert reports.run_report(store, "versions", "tool", november).meta["median_upgrade_days"] == 2.0
    french = dataclasses.replace(november, country="FR")
    assert reports.run_report(store, "versions", "tool", french).meta["median_upgrade_days"] == 6.0


@on_every_store
def test_a_report_runs_the_barrier_once_not_once_per_query(store: EventStore) -> None:
    """The barrier (the ingest log's catch-up) may load a backlog under ingest load: the overview's
    eight queries each ran it, and chased the loader eight times (issue 9's visibility probe)."""
    from footfall.server.query import properties

    calls: list[str] = []
    store.barrier = lambda: calls.append(threading.current_thread().name)
    overview = reports.run_report(store, "overview", "tool", last(5))
    assert overview.rows[0][:2] == ["events", 5]
    assert len(calls) == 1
    properties.run_argument_report(store, "compare", "tool", last(5), {"a": "1.0", "b": "2.0"})
    assert len(calls) == 2
    store.query("SELECT 1")  # a query on its own still sees every acknowledged event
    assert len(calls) == 3
    with store.consistent_reads():
        other = threading.Thread(target=store.query, args=("SELECT 1",), name="other")
        other.start()
        other.join()
        store.query("SELECT 1")
    assert calls[3:] == ["MainThread", "other"]  # another thread's query is not inside this block


class RecordingStore(MemoryStore):
    """A real in-memory store that keeps the text of each report query."""

    def __init__(self) -> None:
        super().__init__()
        self.statements: list[str] = []

    def query(self, sql: str, params: Any = None) -> Any:
        self.statements.append(sql)
        return super().query(sql, params)


def test_per_day_reports_count_a_month_in_blocks_of_a_week_with_the_same_answer() -> None:
    """A distinct count per day over a whole month filled one hash table of every (day, install)
    pair: at 10M events on DuckDB, twice the time of counting it a week at a time (the overview's
    profile, docs/benchmarks.md). The blocks meet at local midnights, across a DST change too."""
    memory = RecordingStore()
    berlin = Filters(dt.date(2026, 3, 2), dt.date(2026, 3, 31), timezone=BERLIN)  # 30 days, DST on the 29th
    moments = [dt.datetime(2026, 3, 1, 23, 0) + dt.timedelta(days=n) for n in range(30)]  # each day's 00:00 CET
    moments += [moment - dt.timedelta(seconds=1) for moment in moments[1:]]  # each day's last second
    moments = [
        moment - dt.timedelta(hours=1) if moment >= dt.datetime(2026, 3, 29, 1) else moment for moment in moments
    ]
    memory.write([event(0, "start", f"i{n}", f"s{n}", at=moment) for n, moment in enumerate(moments)]).result(30)
    try:
        daily = reports.run_report(memory, "timeseries", "tool", berlin)
        per_day = reports.summary(memory, "tool", berlin)["per_day"]
        adoption = reports.run_report(memory, "adoption", "tool", berlin)
    finally:
        memory.close()
    assert [row[1] for row in daily.rows] == [2] * 29 + [1]  # the last day's last second is not there
    assert [d["events"] for d in per_day] == [2] * 29 + [1]
    assert [row[2] for row in adoption.rows] == [2] * 29 + [1]  # an install per event
    per_day_statements = [sql for sql in memory.statements if "UNION ALL" in sql]
    assert len(per_day_statements) == 3  # timeseries, the summary's days, adoption
    assert all(sql.count("UNION ALL") == 4 for sql in per_day_statements)  # five blocks of six days
