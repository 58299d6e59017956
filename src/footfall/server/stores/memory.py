"""An in-memory store for tests and for tool authors: real DuckDB, no file."""

from __future__ import annotations

from footfall.server.stores.duckdb import DuckDBStore


class MemoryStore(DuckDBStore):
    def __init__(self) -> None:
        super().__init__(":memory:")
