"""The stores tests run on, and stores for fault tests.

`STORE_FACTORIES` is the one list of real stores a store-agnostic test runs on: a store
(ClickHouse) joins every such test by adding one factory here. The `store_kind` fixture
(tests/conftest.py) picks one; it is "duckdb" unless a test asks for every store with
`@on_every_store`, and then starts what the store needs first (`NEEDS`: the session's
clickhouse-server, which skips with the reason when it is not installed, and fails under
CI=true). `store_factory` (its factory), `app_server_factory` and `app_server` build their
store from it.

`FlakyStore` and `SlowLookupStore` are real stores whose loads fail, or whose lookups are
slow, on demand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from footfall.server.errors import StoreUnavailable
from footfall.server.stores.base import EventStore
from footfall.server.stores.clickhouse import ClickHouseStore
from footfall.server.stores.duckdb import DuckDBStore
from tests import clickhouse

StoreFactory = Callable[[Path], EventStore]  # a new, empty store; the folder is the test's to use
STORE_FACTORIES: dict[str, StoreFactory] = {
    "duckdb": lambda folder: DuckDBStore(folder / "footfall.duckdb"),
    "clickhouse": clickhouse.store,  # a new database on the session's clickhouse-server (tests/clickhouse.py)
}
STORE_KINDS = sorted(STORE_FACTORIES)
NEEDS = {"clickhouse": "clickhouse_server"}  # the fixture a kind needs started first
DEFAULT_KIND = "duckdb"  # the store of a test that does not ask for every store

# A test (or a whole module, as `pytestmark`) that runs once per store: it parametrises the
# `store_kind` fixture, which every store-building fixture depends on.
on_every_store = pytest.mark.parametrize("store_kind", STORE_KINDS, indirect=True)


def reopen(store: EventStore) -> EventStore:
    """The same store opened anew, as after a restart (close the old one first)."""
    if isinstance(store, DuckDBStore):
        return DuckDBStore(store.path)
    assert isinstance(store, ClickHouseStore), store
    return ClickHouseStore(str(store.address))


def props_of(store: EventStore) -> list[dict[str, Any]]:
    """Each stored event's properties, decoded, in time order: the engines' JSON functions differ,
    so the props are decoded here, not in SQL."""
    return [json.loads(text) for (text,) in store.query("SELECT props FROM events ORDER BY time").rows]


def markers(store: EventStore) -> list[str]:
    """The `marker` property of every stored event, sorted (tests tag each event with one)."""
    return sorted(str(props.get("marker")) for props in props_of(store))


class Flaky:
    """A mixin for a real store whose segment loads fail while `failing` is set, as a full disk
    would; the ingest log keeps the acknowledged events meanwhile."""

    failing = False

    def load_segment(self, path: Path, segment: str) -> int | None:
        if self.failing:
            raise StoreUnavailable("the disk is full")
        return super().load_segment(path, segment)  # type: ignore[misc, no-any-return]


class FlakyStore(Flaky, DuckDBStore):
    pass


class FlakyClickHouseStore(Flaky, ClickHouseStore):
    pass


FLAKY_FACTORIES: dict[str, Callable[[Path], Flaky]] = {
    "duckdb": lambda folder: FlakyStore(folder / "flaky.duckdb"),
    "clickhouse": lambda folder: FlakyClickHouseStore(clickhouse.running().database()),
}


class SlowLookupStore(DuckDBStore):
    """A real DuckDB store whose key lookups take as long as an ingest worker's call to a busy
    owner can (edge.forwarding): a route must make them off the event loop."""

    lookup_delay_s = 0.5

    def app_for_key(self, kind: str, key: str) -> tuple[str, str] | None:
        time.sleep(self.lookup_delay_s)
        return super().app_for_key(kind, key)
