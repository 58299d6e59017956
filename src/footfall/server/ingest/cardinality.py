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
import time
from collections.abc import Sequence

from footfall.server.errors import FootfallError
from footfall.server.metrics import Metrics
from footfall.server.stores.base import EventRecord, EventStore

OTHER = "other"
SEED_RETRY_SECONDS = 10.0  # after a failed seed, how long an app's fields go without another try
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
    def __init__(
        self,
        store: EventStore | None,
        max_values: int,
        metrics: Metrics | None = None,
        seed_retry_seconds: float = SEED_RETRY_SECONDS,
    ) -> None:
        self.store = store
        self.max_values = max_values  # per (app, field); 0 turns the cap off
        self.metrics = metrics
        self.seed_retry_seconds = seed_retry_seconds
        self._known: dict[tuple[str, str], set[str]] = {}
        self._seeded: set[tuple[str, str]] = set()  # keys whose values were read from the store
        self._seed_failed: dict[str, float] = {}  # app -> monotonic time of its last failed seed
        self._generation: dict[str, int] = {}  # app -> how many times it was forgotten
        self._lock = threading.Lock()

    def forget_app(self, app: str) -> None:
        """Drop everything known about `app`: called when it is removed, so an app later
        created under that name starts with empty slots. A seed running meanwhile is discarded."""
        with self._lock:
            for key in [key for key in self._known if key[0] == app]:
                del self._known[key]
            self._seeded = {key for key in self._seeded if key[0] != app}
            self._seed_failed.pop(app, None)
            self._generation[app] = self._generation.get(app, 0) + 1

    def _unseeded(self, app: str, fields: Sequence[str]) -> tuple[list[str], int]:
        """(the fields of `app` still to read from the store, the app's generation); under the lock."""
        failed_at = self._seed_failed.get(app)
        if self.store is None or (failed_at is not None and time.monotonic() - failed_at < self.seed_retry_seconds):
            return [], self._generation.get(app, 0)
        return [field for field in fields if (app, field) not in self._seeded], self._generation.get(app, 0)

    def _seed(self, app: str, field: str) -> set[str] | None:
        """The values the store holds for one (app, field); None when it cannot be read now.

        Runs without the guard's lock: up to nine queries on a busy store must not stall
        every other app's ingest.
        """
        assert self.store is not None
        try:
            values = self.store.distinct_values(app, field, self.max_values + 1)
        except FootfallError:
            return None
        return {value for value in values if value not in ("", OTHER)}

    def _merge(self, app: str, generation: int, seeded: dict[str, set[str] | None]) -> None:
        """Add what the store holds to what this process learnt meanwhile; under the lock.

        A failed seed is not remembered as a seed: the field starts provisionally empty (so
        an outage lets at most one cap's worth of new values through), and the next event
        after `seed_retry_seconds` reads the store again and adds its values to those.
        """
        if self._generation.get(app, 0) != generation:
            return  # the app was removed while the store was read: these values are its old ones
        for field, values in seeded.items():
            if values is None:
                self._seed_failed[app] = time.monotonic()
                continue
            self._known.setdefault((app, field), set()).update(values)
            self._seeded.add((app, field))

    def fold(self, record: EventRecord, learn: bool = True) -> EventRecord:
        """The record with each capped field's new value replaced by "other" once the field is full.

        With `learn=False` (the debug endpoints' previews) nothing new is remembered.
        """
        if self.max_values <= 0:
            return record
        changes: dict[str, str] = {}
        fields = [field for field in FIELDS if getattr(record, field) not in ("", OTHER)]
        with self._lock:
            unseeded, generation = self._unseeded(record.app, fields)
        seeded: dict[str, set[str] | None] = {}
        for field in unseeded:  # outside the lock
            seeded[field] = self._seed(record.app, field)
            if seeded[field] is None:
                break  # the store is failing: spare it the other fields' queries
        with self._lock:
            if seeded:
                self._merge(record.app, generation, seeded)
            for field in fields:
                value: str = getattr(record, field)
                known = self._known.setdefault((record.app, field), set())
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
