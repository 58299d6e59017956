"""A cap on distinct values per app and field, applied at ingest.

Every distinct app version, OS, event name, ... becomes a row in a report and an
option in the dashboard's pickers. A client that sends thousands of made-up
versions (2,000 GA requests put 40,017 `<option>`s on every dashboard tab) would
make every page huge and every report slow. So each (app, field) keeps at most
`max_values` distinct values; once full, a value never seen before is stored as
"other". Values already known keep flowing unchanged.

The known values are seeded lazily from the store: one distinct-values query per (app,
field), the first time an event of that app arrives, so a restart neither forgets
them nor lets the cap be exceeded again.
"""

from __future__ import annotations

import dataclasses
import threading

from footfall.server.errors import FootfallError
from footfall.server.metrics import Metrics
from footfall.server.stores.base import EventRecord, EventStore

OTHER = "other"
# The record's fields that reports group by or pickers list. Each name is a column of
# the events table, so it is safe to put into SQL (it never comes from a request).
FIELDS: tuple[str, ...] = (
    "app_version",
    "os",
    "os_version",
    "arch",
    "runtime",
    "runtime_version",
    "ci",
    "container",
    "name",
)


class CardinalityGuard:
    def __init__(self, store: EventStore | None, max_values: int, metrics: Metrics | None = None) -> None:
        self.store = store
        self.max_values = max_values  # per (app, field); 0 turns the cap off
        self.metrics = metrics
        self._known: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()

    def _values(self, app: str, field: str) -> set[str]:
        """The known values of one (app, field), read from the store the first time."""
        key = (app, field)
        known = self._known.get(key)
        if known is None:
            known = self._seed(app, field)
            self._known[key] = known
        return known

    def _seed(self, app: str, field: str) -> set[str]:
        if self.store is None:
            return set()
        try:
            values = self.store.distinct_values(app, field, self.max_values + 1)
        except FootfallError:
            # Unreadable now (the spool is taking writes): start empty. At worst this
            # (app, field) ends with up to twice the cap, never unbounded.
            return set()
        return {value for value in values if value not in ("", OTHER)}

    def fold(self, record: EventRecord, learn: bool = True) -> EventRecord:
        """The record with each capped field's new value replaced by "other" once the field is full.

        With `learn=False` (the debug endpoints' previews) nothing new is remembered.
        """
        if self.max_values <= 0:
            return record
        changes: dict[str, str] = {}
        with self._lock:
            for field in FIELDS:
                value: str = getattr(record, field)
                if value in ("", OTHER):
                    continue
                known = self._values(record.app, field)
                if value in known:
                    continue
                if len(known) < self.max_values:
                    if learn:
                        known.add(value)
                    continue
                changes[field] = OTHER
        if not changes:
            return record
        if learn and self.metrics is not None:
            for field in changes:
                self.metrics.count(
                    "footfall_values_folded_total",
                    "Values stored as 'other' because their field had reached its distinct-value cap.",
                    field=field,
                )
        return dataclasses.replace(record, **changes)  # type: ignore[arg-type]  # every changed field is a str
