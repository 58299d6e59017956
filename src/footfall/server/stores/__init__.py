"""Event stores: interchangeable parts behind `EventStore` (see base.py)."""

from __future__ import annotations

from pathlib import Path

from footfall.server.stores.base import App, EventRecord, EventStore, QueryResult

__all__ = ["App", "EventRecord", "EventStore", "QueryResult", "open_store"]


def open_store(store: str, database_file: Path) -> EventStore:
    """The store a `--store` setting names: "" for the DuckDB file `database_file` (in --data),
    or clickhouse://HOST:PORT/DATABASE."""
    if store:
        from footfall.server.stores.clickhouse import ClickHouseStore

        return ClickHouseStore(store)
    from footfall.server.stores.duckdb import DuckDBStore

    return DuckDBStore(database_file)
