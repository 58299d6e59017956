"""Event stores: interchangeable parts behind `EventStore` (see base.py)."""

from __future__ import annotations

from footfall.server.stores.base import App, EventRecord, EventStore, QueryResult

__all__ = ["App", "EventRecord", "EventStore", "QueryResult"]
