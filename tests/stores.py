"""Stores for fault tests: real DuckDB files whose loads fail on demand."""

from __future__ import annotations

import time
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


class SlowLookupStore(DuckDBStore):
    """A real DuckDB store whose key lookups take as long as an ingest worker's call to a busy
    owner can (edge.forwarding): a route must make them off the event loop."""

    lookup_delay_s = 0.5

    def app_for_key(self, kind: str, key: str) -> tuple[str, str] | None:
        time.sleep(self.lookup_delay_s)
        return super().app_for_key(kind, key)
