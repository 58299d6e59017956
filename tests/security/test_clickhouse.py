"""ClickHouse 18.16 has no query parameters over HTTP: every value the store sends is written into
the SQL as an escaped literal (`stores.clickhouse.bind`). Hostile values must come back as the
same text, never as SQL; a store URL names a database, never a statement."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest

from footfall.server.errors import StoreUnavailable, UsageError
from footfall.server.query import reports
from footfall.server.query.filters import Filters, PropertyFilter
from footfall.server.stores.base import EventRecord
from footfall.server.stores.clickhouse import ClickHouseStore, bind, parse_url
from tests.clickhouse import ClickHouseServer

HOSTILE = (
    "it's",
    "\\",
    "\\'; DROP TABLE events; --",
    "' OR '1'='1",
    "$app",
    "line\nbreak\ttab",
    "\x00nul",
    "ünïcödé 😀",
    '{"v":1}',
    "?",
)


@pytest.fixture
def store(clickhouse_server: ClickHouseServer) -> Iterator[ClickHouseStore]:
    opened = ClickHouseStore(clickhouse_server.database())
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_parameter_comes_back_as_the_same_text(store: ClickHouseStore, value: str) -> None:
    answer = store.query("SELECT $value AS v, $many AS w", {"value": value, "many": [value, "x"]}).rows
    assert answer == [(value, [value, "x"])]
    assert store.query("SELECT count(*) FROM events").rows == [(0,)]  # nothing was dropped


def test_a_dollar_inside_a_literal_is_not_a_parameter_and_a_missing_one_is_an_error() -> None:
    assert bind("SELECT '$app', $app", {"app": "x'"}) == "SELECT '$app', 'x\\''"
    with pytest.raises(ValueError, match=r"\$name"):
        bind("SELECT $name", {})


def test_a_hostile_property_filter_matches_only_itself(store: ClickHouseStore) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    store.add_app("alpha")
    base = EventRecord(
        now, now, "alpha", "1", "export", "a" * 64, "b" * 64, "", "", "", "", "", "", "", "", "{}", "native"
    )
    hostile = "' OR '1'='1"
    records = [
        dataclasses.replace(base, props='{"format": "csv"}'),
        dataclasses.replace(base, props='{"format": "' + hostile.replace('"', '\\"') + '"}'),
    ]
    assert store.write(records).result(timeout=60) == ()
    for value, expected in ((hostile, 1), ("csv", 1), ("' OR 1=1 --", 0)):
        filters = Filters(now.date(), now.date(), properties=(PropertyFilter("export", "format", value),))
        assert reports.summary(store, "alpha", filters)["events"] == expected, value


@pytest.mark.parametrize(
    "url",
    [
        "clickhouse://127.0.0.1:8123/db; DROP TABLE events",
        "clickhouse://127.0.0.1:8123/db?query=DROP",
        "clickhouse://127.0.0.1:8123/",
        "clickhouse://127.0.0.1:x/db",
        "http://127.0.0.1:8123/db",
        "clickhouse:///db",
    ],
)
def test_a_store_url_names_a_database_and_nothing_else(url: str) -> None:
    with pytest.raises(UsageError):
        parse_url(url)


def test_the_password_never_shows_in_the_store_address() -> None:
    address = parse_url("clickhouse://reader:s3cret@127.0.0.1:8123/footfall")
    assert (address.user, address.password) == ("reader", "s3cret")
    assert "s3cret" not in str(address) and "s3cret" not in repr(str(address))


def test_a_read_cannot_write(store: ClickHouseStore) -> None:
    """Reads (reports) run with readonly=2: even SQL that reached them could not change data."""
    store.add_app("alpha")
    # A trailing comment swallows the FORMAT clause the store appends, so this would parse and run.
    with pytest.raises(StoreUnavailable, match="readonly"):
        store.query_now("INSERT INTO apps (name, updated, deleted) SELECT 'intruder', 1, 0 --")
    assert [app.name for app in store.list_apps()] == ["alpha"]


def test_a_negative_number_after_a_minus_never_starts_a_comment(store: ClickHouseStore) -> None:
    """Review: `literal(-5)` was a bare `-5`, so `1-$n` became `1--5`: ClickHouse reads `--` as a
    comment and drops the rest of the line, a filter included."""
    assert bind("SELECT 1-$n", {"n": -5}) == "SELECT 1-(-5)"
    assert store.query("SELECT 1-$n AS x WHERE 1 = $one", {"n": -5, "one": 1}).rows == [(6,)]
    assert store.query("SELECT 1-$f AS x", {"f": -0.5}).rows == [(1.5,)]
    assert bind("$big", {"big": 10**400}) == str(10**400)  # an int too large for a float stays text
