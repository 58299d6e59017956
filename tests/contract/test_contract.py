"""The contract: every store answers every named report, and the summary, as the reference does.

Store-agnostic: every test runs once per store in `tests/stores.py`'s `STORE_FACTORIES`
(`on_every_store`), through the `store_factory` fixture; a new store joins by adding one
factory there. The data go in through `EventStore.write` only; the reports run through
`query.reports` on that store and are compared, values and all (columns, rows, meta), with
`tests/contract/reference.py` under every filter case.

`make test` runs a fixed seed (`test_fixed_seed`) and a few generated data sets. For a
longer search: `HYPOTHESIS_PROFILE=long pytest tests/contract` (200 data sets, every filter
case on each).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from footfall.server.query import properties, reports
from footfall.server.query.filters import PROPERTY_NAME, Filters, PropertyFilter
from footfall.server.stores.base import EventRecord, EventStore
from tests.contract import reference
from tests.contract.data import QUERIED_APPS, datasets, generate
from tests.stores import StoreFactory, on_every_store

pytestmark = on_every_store  # every test here, once per store in tests/stores.py's STORE_FACTORIES
SEED = 20261201
WRITE_BATCH = 100  # events per EventStore.write, so runs span several commits
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
EXAMPLES = 200 if LONG else 3
CASES_PER_EXAMPLE = None if LONG else 4  # None: every filter case


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def filter_cases() -> list[tuple[str, Filters]]:
    """Each filter on and off with a few values, several ranges and time zones (named, for messages)."""
    cases: list[tuple[str, Filters]] = []

    def ending_today(days: int, timezone: str = "UTC", **changes: Any) -> Filters:
        end = reference.today(timezone)
        return Filters(end - dt.timedelta(days=days - 1), end, timezone=timezone, **changes)

    month = ending_today(30)
    cases += [
        ("30 days to today", month),
        ("2 days to today, hourly", ending_today(2)),
        ("today, hourly", ending_today(1)),
        ("60 days", ending_today(60)),
        (
            "10 days ending 5 days ago",
            dataclasses.replace(month, start=month.end - dt.timedelta(days=14), end=month.end - dt.timedelta(days=5)),
        ),
    ]
    for name, changes in (
        ("version 1.0", {"version": "1.0"}),
        ("version 1.10", {"version": "1.10"}),
        ("country DE", {"country": "DE"}),
        ("ci exclude", {"ci": "exclude"}),
        ("ci only", {"ci": "only"}),
        ("container docker", {"container": "docker"}),
        ("container none", {"container": "none"}),
        ("export.format=csv", {"properties": (PropertyFilter("export", "format", "csv"),)}),
        ("command.command=build", {"properties": (PropertyFilter("command", "command", "build"),)}),
        ("event.category=ui", {"properties": (PropertyFilter("event", "category", "ui"),)}),
        ("level_up.level=2 (a number)", {"properties": (PropertyFilter("level_up", "level", "2"),)}),
        (
            "export.rows=250 and format=csv",
            {"properties": (PropertyFilter("export", "rows", "250"), PropertyFilter("export", "format", "csv"))},
        ),
        ("country DE, ci exclude", {"country": "DE", "ci": "exclude"}),
        (
            "version 1.2, container none, export.format=csv",
            {"version": "1.2", "container": "none", "properties": (PropertyFilter("export", "format", "csv"),)},
        ),
    ):
        cases.append((name, dataclasses.replace(month, **changes)))
    for zone in ("Europe/Berlin", "America/New_York", "Asia/Kolkata"):
        cases.append((f"30 days to today, {zone}", ending_today(30, zone)))
    cases += [
        ("2 days to today, hourly, Berlin", ending_today(2, "Europe/Berlin")),
        (
            "Berlin, country DE, export.format=csv",
            ending_today(30, "Europe/Berlin", country="DE", properties=(PropertyFilter("export", "format", "csv"),)),
        ),
        ("March DST, Berlin", Filters(dt.date(2026, 3, 23), dt.date(2026, 4, 5), timezone="Europe/Berlin")),
        ("March DST, UTC", Filters(dt.date(2026, 3, 23), dt.date(2026, 4, 5))),
        ("DST day, hourly, Berlin", Filters(dt.date(2026, 3, 29), dt.date(2026, 3, 29), timezone="Europe/Berlin")),
        ("October DST, Berlin", Filters(dt.date(2026, 10, 19), dt.date(2026, 11, 1), timezone="Europe/Berlin")),
        (
            "DST day, hourly, Berlin, autumn",
            Filters(dt.date(2026, 10, 25), dt.date(2026, 10, 25), timezone="Europe/Berlin"),
        ),
    ]
    return cases


def load(store: EventStore, records: Sequence[EventRecord]) -> None:
    for first in range(0, len(records), WRITE_BATCH):
        refused = store.write(records[first : first + WRITE_BATCH]).result(timeout=60)
        assert refused == (), refused


def same(found: Any, expected: Any, where: str) -> None:
    """Equal values, recursively; floats to 1e-9 (they come from different arithmetic)."""
    if isinstance(expected, float) and isinstance(found, (int, float)) and not isinstance(found, bool):
        assert math.isclose(found, expected, rel_tol=1e-9, abs_tol=1e-9), f"{where}: {found!r} != {expected!r}"
    elif isinstance(expected, dict) and isinstance(found, dict):
        assert sorted(found) == sorted(expected), f"{where}: keys {sorted(found)} != {sorted(expected)}"
        for key in expected:
            same(found[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)) and isinstance(found, (list, tuple)):
        assert len(found) == len(expected), f"{where}: {len(found)} rows != {len(expected)}\n{found}\n{expected}"
        for index, (a, b) in enumerate(zip(found, expected, strict=True)):
            same(a, b, f"{where}[{index}]")
    else:
        assert type(found) is type(expected) and found == expected, f"{where}: {found!r} != {expected!r}"


def as_dict(report: reports.Report) -> dict[str, Any]:
    return {
        "name": report.name,
        "title": report.title,
        "columns": report.columns,
        "rows": report.rows,
        "meta": report.meta,
    }


# Version pairs for `compare`: neighbours, far apart, a version with itself, and one never seen.
COMPARE_PAIRS = (("1.0", "1.2"), ("1.2", "1.10"), ("0.9", "2.0rc1"), ("1.10", "1.10"), ("2.0rc1", "9.9"))
# The argument reports cost a few queries each; to stay fast, every (event, property) pair and every
# version pair runs under the filter cases named here, and under every other case a rotating few
# pairs run (so each case applies to both reports), always with the pairs in `ALWAYS_PROPERTIES`.
FULL_CASES = ("30 days to today", "60 days", "export.format=csv", "30 days to today, Europe/Berlin")
ALWAYS_PROPERTIES = (("export", "size"), ("export", "tags"), ("command", "options"))
ROTATING_PROPERTIES = 3  # further pairs per app and case
ROTATING_COMPARE = 1

Call = tuple[str, dict[str, str]]  # a report's name and its arguments ({} for a named report)


def property_pairs(data: reference.Data, app: str) -> list[tuple[str, str]]:
    """Every (event, property) pair the app's data hold, with names a report can take."""
    return sorted(
        {
            (event.name, key)
            for _, event in data.of_app(app)
            for key in reference.props(event)
            if PROPERTY_NAME.fullmatch(event.name) and PROPERTY_NAME.fullmatch(key)
        }
    )


def calls(data: reference.Data, app: str, case: str, number: int) -> list[Call]:
    """Every named report and the summary, and the argument reports for case `number` (named `case`)."""
    pairs = property_pairs(data, app)
    versions = list(COMPARE_PAIRS)
    if case not in FULL_CASES:
        others = [pair for pair in pairs if pair not in ALWAYS_PROPERTIES]
        # A generated data set may hold no other pair at all (hypothesis found one): then none rotates.
        rotating = (
            [others[(number * ROTATING_PROPERTIES + i) % len(others)] for i in range(ROTATING_PROPERTIES)]
            if others
            else []
        )
        pairs = [pair for pair in pairs if pair in ALWAYS_PROPERTIES or pair in rotating]
        versions = [versions[(number + i) % len(versions)] for i in range(ROTATING_COMPARE)]
    return [
        *((name, {}) for name in [*reports.REPORTS, "summary"]),
        *(("properties", {"event": event, "property": key}) for event, key in pairs),
        *(("compare", {"a": a, "b": b}) for a, b in versions),
    ]


def answers(store: EventStore, data: reference.Data, call: Call, app: str, filters: Filters) -> tuple[Any, Any]:
    """The store's answer and the reference's, to one report (or the summary)."""
    name, arguments = call
    if name == "summary":
        return reports.summary(store, app, filters), reference.summary(data, app, filters)
    if name in properties.ARGUMENT_REPORTS:
        found = properties.run_argument_report(store, name, app, filters, arguments)
        return as_dict(found), as_dict(reference.ARGUMENT_REPORTS[name](data, app, filters, arguments))
    expected = reference.REPORTS[name](data, app, filters)
    return as_dict(reports.run_report(store, name, app, filters)), as_dict(expected)


def check_everything(store: EventStore, data: reference.Data, cases: Sequence[tuple[str, Filters]]) -> int:
    """Every report and the summary, for every queried app and case; returns how many were compared."""
    compared = 0
    for number, (case, filters) in enumerate(cases):
        for app in QUERIED_APPS:
            for call in calls(data, app, case, number):
                where = f"{call[0]}{call[1] or ''} of {app}, {case}"
                found, expected = answers(store, data, call, app, filters)
                try:
                    same(found, expected, where)
                except AssertionError:
                    # once more: the hour (a partial period) may have turned
                    found, expected = answers(store, data, call, app, filters)
                    same(found, expected, where)
                compared += 1
    return compared


@pytest.fixture
def fixed_store(store_factory: StoreFactory, tmp_path: Path) -> Iterator[tuple[EventStore, reference.Data]]:
    records = generate(SEED, now_utc(), size=120)
    store = store_factory(tmp_path)
    try:
        load(store, records)
        yield store, reference.Data(records)
    finally:
        store.close()


@pytest.mark.timeout(600)  # ClickHouse answers over HTTP: thousands of queries, about 90 s on a loaded machine
def test_every_report_matches_the_reference_on_the_fixed_seed(fixed_store: tuple[EventStore, reference.Data]) -> None:
    store, data = fixed_store
    cases = filter_cases()
    expected = sum(len(calls(data, app, case, n)) for n, (case, _) in enumerate(cases) for app in QUERIED_APPS)
    assert check_everything(store, data, cases) == expected
    for app in QUERIED_APPS:  # every pair ran under the full cases; the pairs hold lists, numbers and booleans
        assert set(ALWAYS_PROPERTIES) <= set(property_pairs(data, app))
    assert set(reference.REPORTS) == set(reports.REPORTS)  # a new report needs its reference
    assert set(reference.ARGUMENT_REPORTS) == set(properties.ARGUMENT_REPORTS)


def test_the_fixed_seed_covers_what_the_contract_promises(fixed_store: tuple[EventStore, reference.Data]) -> None:
    """The generated data hold each case the definitions single out, so the comparison tests them."""
    _, data = fixed_store
    records = data.events
    assert {r.app for r in records} >= set(QUERIED_APPS)
    assert any(r.app_version == "" for r in records) and any(r.country == "" for r in records)
    assert any(r.ci for r in records) and any(r.container for r in records)
    assert any(r.install == "" for r in records) and any(r.session == "" for r in records)
    assert {r.source for r in records} == {"native", "ga-v1", "ga4"}
    assert any(r.received - r.time > dt.timedelta(days=1) for r in records)  # late events
    assert any(r.time.time() in (dt.time(0, 0), dt.time(23, 59, 59)) for r in records)
    assert any(dt.date(2026, 3, 28) <= r.time.date() <= dt.date(2026, 3, 30) for r in records)
    assert any('"cd' in r.props for r in records) and any('"options"' in r.props for r in records)
    today = reference.today("UTC")
    assert any(r.time.date() == today for r in records)
    # errors, errors_by_version and compare: failing outcomes of each kind, commands with options
    commands = [reference.props(r) for r in records if r.name == "command"]
    assert {"exit:2", "KeyError", "error:ValueError", "ValueError", "ok"} <= {c.get("outcome") for c in commands}
    assert any("command" not in c for c in commands) and any(c.get("command") == "" for c in commands)
    assert any(len(c.get("options", [])) == 2 and len(set(c["options"])) == 1 for c in commands)  # a repeat
    # properties: scalar numbers of every sign and several decades, null, a list with a repeat and a blank,
    # a boolean, and one value both as a number and as text
    exports = [reference.props(r) for r in records if r.name == "export"]
    sizes = {e["size"] for e in exports if "size" in e and e["size"] is not None}
    assert {0, -4, 0.5, 1000} <= sizes and any("size" in e and e["size"] is None for e in exports)
    assert any(len(e.get("tags", [])) > len(set(map(str, e.get("tags", [])))) for e in exports)
    assert any("" in e.get("tags", []) for e in exports) and any(1 in e.get("tags", []) for e in exports)
    assert {True, False} <= {e.get("compressed") for e in exports}
    assert {250, "250"} <= {e["rows"] for e in exports}
    assert any("via.client" in e for e in exports) and any(isinstance(e.get("extra"), dict) for e in exports)


def test_the_reference_differs_when_the_data_differ(fixed_store: tuple[EventStore, reference.Data]) -> None:
    """A sanity check of the comparison itself: one more event changes the answer it expects."""
    store, data = fixed_store
    filters = filter_cases()[0][1]
    before = reference.summary(data, "alpha", filters)
    extra = dataclasses.replace(data.events[-1], app="alpha", time=now_utc(), received=now_utc())
    after = reference.summary(reference.Data([*data.events, extra]), "alpha", filters)
    assert after["events"] == before["events"] + 1
    with pytest.raises(AssertionError):
        same(reports.summary(store, "alpha", filters), after, "summary")


@pytest.mark.timeout(0 if LONG else 120)  # the long search takes many minutes
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_generated_data_sets_match_the_reference(store_factory: StoreFactory, data: st.DataObject) -> None:
    records = data.draw(datasets(now_utc()), label="records")
    cases = filter_cases()
    if CASES_PER_EXAMPLE is not None:
        cases = data.draw(st.lists(st.sampled_from(cases), min_size=1, max_size=CASES_PER_EXAMPLE), label="cases")
    with tempfile.TemporaryDirectory() as folder:
        store = store_factory(Path(folder))
        try:
            load(store, records)
            assert check_everything(store, reference.Data(records), cases) > 0
        finally:
            store.close()
