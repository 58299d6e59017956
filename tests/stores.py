"""Stores for fault tests: real DuckDB files whose loads fail on demand."""

from __future__ import annotations

from pathlib import Path

from footfall.server.errors import StoreUnavailable
from footfall.server.stores.duckdb import DuckDBStore


class FlakyStore(DuckDBStore):
    """A real DuckDB store whose segment loads fail while `failing` is set, as a full disk would;
    the ingest log keeps the acknowledged events meanwhile."""

    failing = False

    def load_segment(self, path: Path, segment: str) -> int | None:
        if self.failing:
            raise StoreUnavailable("the disk is full")
        return super().load_segment(path, segment)
