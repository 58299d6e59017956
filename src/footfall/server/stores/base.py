"""The storage boundary. Stores know nothing about HTTP or wire formats.

An `EventStore` keeps anonymised `EventRecord`s and the registry of apps, and runs
the report queries written in `footfall.server.query.reports`. Writes return a future that
resolves only once the events are durable, so the collector can acknowledge them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event, after anonymisation. Times are naive UTC."""

    time: dt.datetime
    received: dt.datetime
    app: str
    app_version: str
    name: str
    install: str  # keyed hash of the install id; "" when the client sent none
    session: str  # keyed hash of the per-run id
    os: str
    os_version: str
    arch: str
    runtime: str
    runtime_version: str
    ci: str
    container: str
    country: str
    props: str  # a JSON object, as text
    source: str  # "native", "ga-v1" or "ga4"


EVENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EventRecord))
# Derived by the store at insert: 64-bit keys for fast distinct counts of installs, and
# `run_start`, true on the first stored event of each run, so runs are counted without a distinct.
DERIVED_COLUMNS = ("install_key", "session_key", "run_start")


def record_key(value: str) -> int | None:
    """A 64-bit key for an install or session hash: its first 16 hex digits (None when empty).

    Stores keep it beside the hash so that reports count distinct integers, not strings.
    """
    if not value:
        return None
    head = value[:16]
    if len(head) == 16 and all(c in "0123456789abcdef" for c in head):
        return int(head, 16)
    import hashlib

    return int(hashlib.sha256(value.encode()).hexdigest()[:16], 16)


APP_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # an app id: also a path segment and a URL part


@dataclasses.dataclass(frozen=True)
class App:
    name: str
    created: dt.datetime
    keys: tuple[tuple[str, str], ...] = ()  # (kind, key): ("ga-tid", "UA-1-1"), ("ga4", "G-X")
    has_schema: bool = False
    timezone: str = "UTC"  # where the app's days start (an IANA name)


class AppRegistry:
    """The apps, their wire-protocol keys and schemas, held in memory for the hot path.

    A store loads it once and updates it after each committed change, so the
    collector never queries the database to resolve an app.
    """

    def __init__(self) -> None:
        self.apps: set[str] = set()
        self.keys: dict[tuple[str, str], tuple[str, str]] = {}  # (kind, key) -> (app, secret hash)
        self.schemas: dict[str, str] = {}  # app -> schema JSON
        self.timezones: dict[str, str] = {}  # app -> IANA time zone, when not UTC

    def app_for_key(self, kind: str, key: str) -> tuple[str, str] | None:
        return self.keys.get((kind, key))

    def take_out(self, name: str) -> RegistryEntry:
        """Remove an app (its keys, schema and zone) and return what it held, for `put_back`:
        a removal takes the app out first, so the collector stops accepting its events before
        they are deleted, and puts it back if the delete fails."""
        keys = {pair: owner for pair, owner in self.keys.items() if owner[0] == name}
        for pair in keys:
            del self.keys[pair]
        self.apps.discard(name)
        return RegistryEntry(name, keys, self.schemas.pop(name, None), self.timezones.pop(name, None))

    def put_back(self, entry: RegistryEntry) -> None:
        self.apps.add(entry.name)
        self.keys.update(entry.keys)
        if entry.schema is not None:
            self.schemas[entry.name] = entry.schema
        if entry.timezone is not None:
            self.timezones[entry.name] = entry.timezone


@dataclasses.dataclass(frozen=True)
class RegistryEntry:
    """What the registry held for one app (`AppRegistry.take_out`)."""

    name: str
    keys: dict[tuple[str, str], tuple[str, str]]
    schema: str | None
    timezone: str | None


@dataclasses.dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


# Per thread: how many `consistent_reads` blocks are open (reports run on several threads at once).
_reads = threading.local()


class EventStore:
    """Base class of every store."""

    def write(self, events: Sequence[EventRecord]) -> Future[tuple[int, ...]]:
        """Queue events; the future resolves once they are durable, or fails with StoreUnavailable.

        Its result is the indexes of the events the engine refused as data it cannot hold; every
        other event is durable. One refused event never fails another.
        """
        raise NotImplementedError

    registry: AppRegistry
    # The SQL dialect its queries are written in (`footfall.server.query.dialect`): "duckdb" or "clickhouse".
    dialect = "duckdb"
    # Called before each report query (once per `consistent_reads` block): the server sets it to
    # the ingest log's catch-up, so a read sees every event acknowledged before it (read-your-writes).
    barrier: Callable[[], None] | None = None
    # Called with each app that another server sharing the store removed (a shared store
    # reloads its registry): the server drops what it caches about the app.
    on_removed: Callable[[str], None] | None = None

    def has_app(self, name: str) -> bool:
        if name in self.registry.apps:
            return True
        self._refresh_on_miss()
        return name in self.registry.apps

    def app_for_key(self, kind: str, key: str) -> tuple[str, str] | None:
        """The app (and secret hash) a GA tid, GA4 measurement id or Firebase app id maps to."""
        found = self.registry.app_for_key(kind, key)
        if found is None:
            self._refresh_on_miss()
            found = self.registry.app_for_key(kind, key)
        return found

    def _refresh_on_miss(self) -> None:
        """An app or key not in the registry: a store whose registry is a copy (several
        collectors' ClickHouse, an ingest worker's view of the owner) reloads it, at most once
        per MISS_REFRESH_INTERVAL_S. A store that holds the registry itself has nothing to do."""

    def schema(self, app: str) -> str | None:
        return self.registry.schemas.get(app)

    def timezone(self, app: str) -> str:
        """The app's time zone: its reports' days, weeks and hours are local to it."""
        return self.registry.timezones.get(app, "UTC")

    def check_secrets(self, fingerprint: str, file: str) -> None:
        """Refuse (UsageError) a store that other servers share under another install key than
        `fingerprint`'s, the key in `file`. A store kept in the data directory beside its
        secrets has nothing to compare."""

    def set_timezone(self, app: str, timezone: str) -> None:
        """Store the app's time zone (a name `filters.check_timezone` accepted)."""
        raise NotImplementedError

    def add_key(self, app: str, kind: str, key: str, secret_hash: str = "") -> bool:
        """Map a wire-protocol key to an app; True if it was new. Idempotent."""
        raise NotImplementedError

    def set_schema(self, app: str, schema: str) -> None:
        """Store the app's schema (JSON text), replacing any earlier one."""
        raise NotImplementedError

    def load_segment(self, path: Path, segment: str) -> int | None:
        """Store a sealed ingest-log segment (`ingest.segments`) in one transaction, exactly once.

        The segment's id is recorded with its rows; a segment already loaded is skipped
        (None). Returns how many events were stored: the lines of apps that no longer exist
        are dropped. Raises SegmentRefused when the engine cannot read the segment as data.
        """
        raise NotImplementedError

    def load_segments(self, segments: Sequence[tuple[Path, str]]) -> dict[str, int | None]:
        """`load_segment` for several segments (path, id): each id maps to its events stored, None
        when already loaded. DuckDB's loads them in one transaction (a load's cost is mostly per
        pass), and SegmentRefused then refuses the whole group: the caller loads them one at a
        time, to find the refused lines. This default is one transaction per segment."""
        return {segment: self.load_segment(path, segment) for path, segment in segments}

    def delete_install(self, app: str, install: str) -> int:
        """Delete every event of one (hashed) install; returns how many went."""
        raise NotImplementedError

    def expire_events(self, before: dt.datetime) -> int:
        """Delete every event whose time (naive UTC) is before `before`; returns how many went.

        Retention: raw events older than the cut go; nothing else does (apps, keys, schemas).
        """
        raise NotImplementedError

    def expire_by_itself(self, days: int) -> bool:
        """Have the engine itself delete events older than `days` days (a TTL), where it can;
        True if it will. `expire_events` stays the guarantee; this keeps retention while no
        collector runs."""
        return False

    def add_app(self, name: str) -> bool:
        """Register an app; True if it was new. Idempotent."""
        raise NotImplementedError

    def remove_app(self, name: str) -> int:
        """Delete an app with all its data: events, wire-protocol keys and schema.

        The collector refuses its events from the moment this is called. Returns how many
        events went; 0 (and no change) for an app that is not registered.
        """
        raise NotImplementedError

    def list_apps(self) -> list[App]:
        raise NotImplementedError

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Run one read-only report query with named `$name` parameters, after the barrier."""
        self._barrier()
        return self.query_now(sql, params)

    @contextlib.contextmanager
    def consistent_reads(self) -> Iterator[None]:
        """Run the barrier once, then every query of this thread in the block skips it: for a
        report of several queries. Under ingest load the barrier may load a backlog of segments;
        run before each of the overview's eight queries, it chased the loader eight times."""
        self._barrier()
        _reads.consistent = getattr(_reads, "consistent", 0) + 1
        try:
            yield
        finally:
            _reads.consistent -= 1

    def _barrier(self) -> None:
        if self.barrier is not None and not getattr(_reads, "consistent", 0):
            self.barrier()

    def query_now(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """`query` without the barrier: for reads that need not see the very latest events."""
        raise NotImplementedError

    def ping(self) -> None:
        """Return when the store answers; raise StoreUnavailable otherwise (for /readyz)."""
        self.query_now("SELECT 1")

    def distinct_values(self, app: str, column: str, limit: int) -> list[str]:
        """Up to `limit` distinct values of one event column of one app, in no order."""
        if column not in EVENT_COLUMNS:
            raise ValueError(f"{column!r} is not an event column")
        rows = self.query_now(  # on the ingest path: it must not wait for a load
            f"SELECT DISTINCT {column} FROM events WHERE app = $app LIMIT $limit", {"app": app, "limit": limit}
        ).rows
        return [str(row[0]) for row in rows if row[0] is not None]

    def backup(self, destination: Path) -> None:
        """Write a consistent copy of the whole store to `destination`, a file that must not exist,
        while the store keeps serving.

        The copy holds every write whose future resolved before this call, and no write that
        was only partly committed. Writes queued while the copy is made wait for it to finish
        (they are not refused), so a write acknowledged during a backup may or may not be in it.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Finish queued writes, then release the store."""
        raise NotImplementedError
