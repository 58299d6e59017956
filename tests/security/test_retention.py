"""Retention: raw events older than `retention_days` go while the server runs, not only when an
operator remembers `footfall expire` (which, on DuckDB, needs the server stopped).

- The running server deletes them at start and every hour (`RetentionKeeper`), counted in
  `footfall_events_expired_total`; newer events stay.
- A current ClickHouse (chdb, in-process) also gets a TTL with the same cut, so retention holds
  while no collector runs; Debian's 18.16 has no TTL clause and gets none.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from footfall.server.operations import retention_cut
from footfall.server.stores.base import EventRecord, EventStore
from footfall.server.stores.clickhouse import ClickHouseStore
from footfall.server.stores.duckdb import DuckDBStore
from tests.clickhouse import ChdbTransport, ClickHouseServer
from tests.conftest import GOLDEN_APP, wait_until

KEEP_DAYS = 30


def event(days_ago: float, name: str) -> EventRecord:
    moment = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=days_ago)
    blank = dict.fromkeys(("app_version", "install", "session", "os", "os_version", "arch", "runtime"), "")
    blank |= dict.fromkeys(("runtime_version", "ci", "container", "country"), "")
    return EventRecord(time=moment, received=moment, app=GOLDEN_APP, name=name, props="{}", source="native", **blank)


def names(store: EventStore) -> list[str]:
    return sorted(str(row[0]) for row in store.query_now("SELECT name FROM events").rows)


def test_the_server_deletes_events_older_than_retention_days(app_server_factory: Any, tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    store.add_app(GOLDEN_APP)
    store.write([event(KEEP_DAYS + 10, "too-old"), event(KEEP_DAYS - 10, "kept"), event(0, "today")]).result(30)
    server = app_server_factory(store=store, retention_days=KEEP_DAYS)
    wait_until(lambda: names(store) == ["kept", "today"], 30, "the server to expire the old event")
    assert server.metric("footfall_events_expired_total") == 1


def test_without_retention_days_the_server_keeps_everything(app_server_factory: Any, tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    store.add_app(GOLDEN_APP)
    store.write([event(3650, "ten-years-old")]).result(30)
    server = app_server_factory(store=store)
    assert server.url and names(store) == ["ten-years-old"]


def table_ddl(store: ClickHouseStore) -> str:
    return str(
        store.query_now(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'events'"
        ).rows[0][0]
    )


def test_a_current_clickhouse_gets_a_ttl_with_the_same_cut(tmp_path: Path) -> None:
    store = ClickHouseStore("clickhouse://chdb:0/footfall", transport=ChdbTransport(tmp_path / "chdb"))
    try:
        assert "TTL" not in table_ddl(store)
        assert store.expire_by_itself(KEEP_DAYS)
        ddl = table_ddl(store)
        assert "TTL toStartOfDay(time) + toIntervalDay(31)" in ddl, ddl
        # The TTL's instant for an event (its day's start + DAYS + 1) is the first midnight at
        # which the hourly round's cut passes it: the two agree.
        moment = dt.datetime(2026, 11, 1, 13, 30)
        expires = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=KEEP_DAYS + 1)
        assert moment >= retention_cut(KEEP_DAYS, expires - dt.timedelta(seconds=1))
        assert moment < retention_cut(KEEP_DAYS, expires)
    finally:
        store.close()


def test_the_ttl_follows_the_setting_and_is_removed_at_zero(tmp_path: Path) -> None:
    """Turning retention off must stop the engine's own deletes (before: the TTL stayed and kept
    deleting), and setting the TTL must not rewrite every part (no MATERIALIZE TTL mutation)."""
    store = ClickHouseStore("clickhouse://chdb:0/footfall", transport=ChdbTransport(tmp_path / "chdb"))
    try:
        assert store.expire_by_itself(KEEP_DAYS) and store.expire_by_itself(KEEP_DAYS)
        mutations = store.query_now(
            "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = 'events'"
        ).rows
        assert mutations == [(0,)], "the TTL was materialised over the existing parts"
        assert not store.expire_by_itself(0)
        assert "TTL" not in table_ddl(store)
        assert store.expire_by_itself(7) and "toIntervalDay(8)" in table_ddl(store)
    finally:
        store.close()


def test_clickhouse_18_16_gets_no_ttl(clickhouse_server: ClickHouseServer) -> None:
    store = ClickHouseStore(clickhouse_server.database())
    try:
        assert not store.expire_by_itself(KEEP_DAYS)
        assert "TTL" not in table_ddl(store)
    finally:
        store.close()
