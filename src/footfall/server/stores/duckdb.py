"""The embedded default: one DuckDB file, owned by one writer thread.

DuckDB lets one process open a file for writing and no other process open it at
all, so the server owns the file while it runs and the CLI reaches the data through
the server (see footfall.server.operator.control). Inside the process, every write goes
through one thread that commits in groups: all writes queued while the previous
commit ran share the next transaction. Reads use their own cursors and see
committed data only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import re
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from footfall.server.errors import DataDirLocked, FootfallError, SegmentRefused, StoreUnavailable, UsageError
from footfall.server.stores.base import (
    DERIVED_COLUMNS,
    EVENT_COLUMNS,
    App,
    AppRegistry,
    EventRecord,
    EventStore,
    QueryResult,
    record_key,
)

MAX_GROUP_ROWS = 50_000  # events in one group commit

# Ordered schema migrations: (version, statements). Append only; never edit a shipped one.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE apps (
                name VARCHAR PRIMARY KEY,
                created TIMESTAMP NOT NULL
            )""",
            """CREATE TABLE events (
                time TIMESTAMP NOT NULL,
                received TIMESTAMP NOT NULL,
                app VARCHAR NOT NULL,
                app_version VARCHAR NOT NULL,
                name VARCHAR NOT NULL,
                install VARCHAR NOT NULL,
                session VARCHAR NOT NULL,
                os VARCHAR NOT NULL,
                os_version VARCHAR NOT NULL,
                arch VARCHAR NOT NULL,
                runtime VARCHAR NOT NULL,
                runtime_version VARCHAR NOT NULL,
                ci VARCHAR NOT NULL,
                container VARCHAR NOT NULL,
                country VARCHAR NOT NULL,
                props VARCHAR NOT NULL,
                source VARCHAR NOT NULL
            )""",
        ),
    ),
    (
        2,
        (
            """CREATE TABLE app_keys (
                app VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                secret_hash VARCHAR NOT NULL,
                PRIMARY KEY (kind, key)
            )""",
            """CREATE TABLE app_schemas (
                app VARCHAR PRIMARY KEY,
                schema VARCHAR NOT NULL,
                updated TIMESTAMP NOT NULL
            )""",
        ),
    ),
    (
        3,
        (
            "ALTER TABLE events ADD COLUMN install_key UBIGINT",
            "ALTER TABLE events ADD COLUMN session_key UBIGINT",
            "UPDATE events SET"
            " install_key = CASE WHEN install = '' THEN NULL ELSE ('0x' || substr(install, 1, 16))::UBIGINT END,"
            " session_key = CASE WHEN session = '' THEN NULL ELSE ('0x' || substr(session, 1, 16))::UBIGINT END",
        ),
    ),
    (
        4,
        (
            "ALTER TABLE events ADD COLUMN run_start BOOLEAN DEFAULT false",
            "UPDATE events SET run_start = true WHERE rowid IN (SELECT arg_min(rowid, time) FROM events"
            " WHERE session_key IS NOT NULL GROUP BY app, session_key)",
        ),
    ),
    (5, ("ALTER TABLE apps ADD COLUMN timezone VARCHAR NOT NULL DEFAULT 'UTC'",)),
    (
        6,
        (
            """CREATE TABLE loaded_segments (
                id VARCHAR PRIMARY KEY,
                loaded TIMESTAMP NOT NULL,
                events BIGINT NOT NULL
            )""",
        ),
    ),
)
RUN_MEMORY = dt.timedelta(hours=73)  # a run idle this long counts again: longer than any event may lag

_COLUMN_TYPES = {
    "time": "TIMESTAMP",
    "received": "TIMESTAMP",
    "install_key": "UBIGINT",
    "session_key": "UBIGINT",
    "run_start": "BOOLEAN",
}
_INSERT_COLUMNS = (*EVENT_COLUMNS, *DERIVED_COLUMNS)
_INSERT_SQL = "INSERT INTO events ({0}) SELECT {0} FROM (SELECT {1})".format(
    ", ".join(_INSERT_COLUMNS),
    ", ".join(f"unnest(${i + 1}::{_COLUMN_TYPES.get(c, 'VARCHAR')}[]) AS {c}" for i, c in enumerate(_INSERT_COLUMNS)),
)
# record_key() in SQL: the first 16 hex digits of a hash, or of its SHA-256 when it is not hex.
_KEY_SQL = (
    "CASE WHEN {0} = '' THEN NULL WHEN regexp_full_match(substr({0}, 1, 16), '[0-9a-f]{{16}}')"
    " THEN ('0x' || substr({0}, 1, 16))::UBIGINT ELSE ('0x' || substr(sha256({0}), 1, 16))::UBIGINT END"
)
_SEGMENT_COLUMNS = "{" + ", ".join(f"'{c}': '{_COLUMN_TYPES.get(c, 'VARCHAR')}'" for c in EVENT_COLUMNS) + "}"
_LOCK_PID = re.compile(r"\(PID (\d+)\)")
# What the engine raises for data it will not take (not for being unavailable): these records are
# refused alone; any other failure leaves the whole group unstored, to be retried.
_REFUSED_DATA = (
    duckdb.InvalidInputException,
    duckdb.ConversionException,
    duckdb.ConstraintException,
    duckdb.OutOfRangeException,
    duckdb.TypeMismatchException,
    UnicodeError,
)


class _Job:
    __slots__ = ("action", "events", "future", "gone")

    def __init__(
        self,
        future: Future[Any],
        events: Sequence[EventRecord] = (),
        action: Callable[[duckdb.DuckDBPyConnection], Any] | None = None,
    ) -> None:
        self.future = future
        self.events = events
        self.action = action
        self.gone: tuple[int, ...] = ()  # indexes of events whose app was removed before their commit


def _kept(job: _Job) -> list[EventRecord]:
    return [event for index, event in enumerate(job.events) if index not in job.gone]


def _done(job: _Job, result: Any) -> None:
    # A waiter may have given up (a request cancelled at shutdown cancels its future): a
    # cancelled or already settled future must not stop the writer.
    with contextlib.suppress(InvalidStateError):
        job.future.set_result(result)


def _fail(job: _Job, exc: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):
        job.future.set_exception(exc)


_STOP = object()


class _AfterCommit(NamedTuple):
    """An action's result, and what the writer does once the action's transaction committed."""

    result: Any
    then: Callable[[], None]


def connect(path: str) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(path)
    except duckdb.IOException as exc:
        match = _LOCK_PID.search(str(exc))
        holder = f" (process {match.group(1)})" if match else ""
        raise DataDirLocked(f"{path} is in use by another process{holder}") from exc
    except duckdb.Error as exc:
        raise StoreUnavailable(f"cannot open {path}: {exc}") from exc


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    for version, statements in MIGRATIONS:
        if version in done:
            continue
        con.execute("BEGIN")
        for statement in statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_migrations VALUES (?)", [version])
        con.execute("COMMIT")


class DuckDBStore(EventStore):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._con = connect(self.path)
        migrate(self._con)
        self.registry = AppRegistry()
        self.registry.apps = {row[0] for row in self._con.execute("SELECT name FROM apps").fetchall()}
        for app, kind, key, secret in self._con.execute("SELECT app, kind, key, secret_hash FROM app_keys").fetchall():
            self.registry.keys[(kind, key)] = (app, secret)
        for app, schema in self._con.execute("SELECT app, schema FROM app_schemas").fetchall():
            self.registry.schemas[app] = schema
        for app, zone in self._con.execute("SELECT name, timezone FROM apps WHERE timezone <> 'UTC'").fetchall():
            self.registry.timezones[app] = zone
        # The runs seen lately, (app, session key) -> last received: the writer flags the first
        # stored event of every other run as its start.
        since = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - RUN_MEMORY
        self._runs: dict[tuple[str, int], dt.datetime] = {
            (app, key): last
            for app, key, last in self._con.execute(
                "SELECT app, session_key, max(received) FROM events WHERE received >= ? AND session_key IS NOT NULL"
                " GROUP BY app, session_key",
                [since],
            ).fetchall()
        }
        self._removed_apps: set[str] = set()  # removed while running: their queued events are refused
        self._queue: queue.Queue[_Job | object] = queue.Queue()
        self._closed = False
        self._cursor_lock = threading.Lock()
        self.commits = 0  # group commits of events so far, for tests and metrics
        self._writer = threading.Thread(target=self._run, args=(self._cursor(),), name="footfall.writer", daemon=True)
        self._writer.start()

    # -- writes -------------------------------------------------------------------

    def write(self, events: Sequence[EventRecord]) -> Future[tuple[int, ...]]:
        future: Future[tuple[int, ...]] = Future()
        if not events:
            future.set_result(())
            return future
        self._submit(_Job(future, events=events))
        return future

    def delete_install(self, app: str, install: str) -> int:
        def delete(con: duckdb.DuckDBPyConnection) -> int:
            rows = con.execute(
                "DELETE FROM events WHERE app = ? AND install = ? RETURNING 1", [app, install]
            ).fetchall()
            return len(rows)

        deleted: int = self._act(delete)
        return deleted

    def expire_events(self, before: dt.datetime) -> int:
        def delete(con: duckdb.DuckDBPyConnection) -> int:
            found = con.execute("DELETE FROM events WHERE time < ?", [before]).fetchone()
            return int(found[0]) if found else 0

        deleted: int = self._act(delete)
        return deleted

    def export_days(self) -> list[tuple[str, dt.date, int, str]]:
        """(app, UTC day, events, digest) for every day that holds events: the migration's
        batches. The digest (of every column of the day's rows, order aside) changes when the
        day's rows do, even when their number does not."""
        columns = ", ".join(EVENT_COLUMNS)
        rows = self.query_now(
            f"SELECT app, CAST(time AS DATE) AS day, count(*), bit_xor(hash({columns})) FROM events"
            " GROUP BY app, day ORDER BY app, day"
        ).rows
        return [(str(app), day, int(count), f"{int(digest):016x}") for app, day, count, digest in rows]

    def export_day(self, app: str, day: dt.date, destination: Path, batch: str) -> None:
        """Write one app's events of one UTC day to `destination` as JSON lines, as ClickHouse's
        JSONEachRow reads them: the event columns (times as whole UTC seconds, props as compact
        JSON), the derived ones, and `batch` as each row's `segment`."""
        exported = {
            "time": "strftime(time, '%Y-%m-%d %H:%M:%S') AS time",
            "received": "strftime(received, '%Y-%m-%d %H:%M:%S') AS received",
            # Compact, as ClickHouse's writer stores props: its visitParamExtract* read only that.
            "props": "CASE WHEN json_valid(props) THEN CAST(json(props) AS VARCHAR) ELSE props END AS props",
        }
        columns = ", ".join(exported.get(c, c) for c in EVENT_COLUMNS)
        target = str(destination).replace("'", "''")
        cursor = self._cursor()
        try:
            cursor.execute(
                f"COPY (SELECT {columns}, install_key, session_key, CAST(run_start AS UTINYINT) AS run_start,"
                " $batch AS segment FROM events WHERE app = $app AND time >= $day AND time < $day + INTERVAL 1 DAY)"
                f" TO '{target}' (FORMAT JSON)",
                {"app": app, "day": dt.datetime.combine(day, dt.time()), "batch": batch},
            )
        except duckdb.Error as exc:
            raise StoreUnavailable(f"export failed: {exc}") from exc
        finally:
            cursor.close()

    def add_app(self, name: str) -> bool:
        def insert(con: duckdb.DuckDBPyConnection) -> bool:
            created = con.execute(
                "INSERT INTO apps (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING name",
                [name, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)],
            ).fetchall()
            return bool(created)

        self._removed_apps.discard(name)
        created: bool = self._act(insert)
        self.registry.apps.add(name)
        return created

    def remove_app(self, name: str) -> int:
        if name not in self.registry.apps:
            return 0
        # Out of the registry first, so the collector stops accepting the app's events
        # before they are deleted; put back if the delete fails.
        entry = self.registry.take_out(name)
        self._removed_apps.add(name)

        def delete(con: duckdb.DuckDBPyConnection) -> int:
            events = len(con.execute("DELETE FROM events WHERE app = ? RETURNING 1", [name]).fetchall())
            for table, column in (("app_keys", "app"), ("app_schemas", "app"), ("apps", "name")):
                con.execute(f"DELETE FROM {table} WHERE {column} = ?", [name])  # fixed names, bound value
            for run in [run for run in self._runs if run[0] == name]:
                del self._runs[run]
            return events

        try:
            deleted: int = self._act(delete)
        except BaseException:
            self._removed_apps.discard(name)
            self.registry.put_back(entry)
            raise
        return deleted  # events accepted before the registry changed are refused at their commit

    def add_key(self, app: str, kind: str, key: str, secret_hash: str = "") -> bool:
        def insert(con: duckdb.DuckDBPyConnection) -> bool:
            owner = con.execute("SELECT app FROM app_keys WHERE kind = ? AND key = ?", [kind, key]).fetchall()
            if owner and owner[0][0] != app:
                raise UsageError(f"{key} is already registered to the app {owner[0][0]!r}")
            con.execute(
                "INSERT INTO app_keys VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET secret_hash = excluded.secret_hash",
                [app, kind, key, secret_hash],
            )
            return not owner

        created: bool = self._act(insert)
        self.registry.keys[(kind, key)] = (app, secret_hash)
        return created

    def load_segment(self, path: Path, segment: str) -> int | None:
        return self.load_segments([(path, segment)])[segment]

    def load_segments(self, segments: Sequence[tuple[Path, str]]) -> dict[str, int | None]:
        loaded: dict[str, int | None] = self._act(lambda con: self._load_segments(con, segments))
        return loaded

    def _load_segments(self, con: duckdb.DuckDBPyConnection, segments: Sequence[tuple[Path, str]]) -> _AfterCommit:
        """On the writer thread, inside `_act`'s transaction: the engine reads the files itself, in one
        pass and one commit however many there are (a load's cost is mostly per pass, not per row).

        Python touches one row per run (to flag where runs start), never one per event.
        """
        ids = [segment for _, segment in segments]
        done = {
            row[0] for row in con.execute("SELECT id FROM loaded_segments WHERE list_contains(?, id)", [ids]).fetchall()
        }
        todo = [(str(path), segment) for path, segment in segments if segment not in done]
        counts: dict[str, int | None] = dict.fromkeys(ids)
        if not todo:
            return _AfterCommit(counts, lambda: None)
        sources = "[" + ", ".join("'" + source.replace("'", "''") + "'" for source, _ in todo) + "]"
        try:  # any step may meet data the engine will not hold (a malformed line, a missing column)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE incoming AS SELECT *,"
                f" {_KEY_SQL.format('install')} AS install_key, {_KEY_SQL.format('session')} AS session_key,"
                " false AS run_start"
                f" FROM read_json({sources}, format = 'newline_delimited', columns = {_SEGMENT_COLUMNS},"
                " filename = true)"
                " WHERE app IN (SELECT name FROM apps)"
            )
            runs = con.execute(
                "SELECT app, session_key, min(rowid), max(received) FROM incoming"
                " WHERE session_key IS NOT NULL GROUP BY app, session_key"
            ).fetchall()
            starts = [first for app, session, first, _ in runs if (app, session) not in self._runs]
            if starts:
                con.execute("UPDATE incoming SET run_start = true WHERE list_contains(?, rowid)", [starts])
            columns = ", ".join(_INSERT_COLUMNS)
            con.execute(f"INSERT INTO events ({columns}) SELECT {columns} FROM incoming")
        except _REFUSED_DATA as exc:
            which = todo[0][1] if len(todo) == 1 else f"{todo[0][1]} (with {len(todo) - 1} more)"
            raise SegmentRefused(f"segment {which} cannot be stored: {exc}") from None
        by_file = dict(con.execute("SELECT filename, count(*) FROM incoming GROUP BY filename").fetchall())
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        for source, segment in todo:
            counts[segment] = int(by_file.get(source, 0))  # a file of removed apps' lines only: 0 rows
            con.execute("INSERT INTO loaded_segments VALUES (?, ?, ?)", [segment, now, counts[segment]])
        con.execute("DROP TABLE incoming")
        seen = {(app, session): last for app, session, _, last in runs}
        return _AfterCommit(counts, lambda: self._remember_runs(seen))

    def set_timezone(self, app: str, timezone: str) -> None:
        self._act(lambda con: con.execute("UPDATE apps SET timezone = ? WHERE name = ?", [timezone, app]))
        if timezone == "UTC":
            self.registry.timezones.pop(app, None)
        else:
            self.registry.timezones[app] = timezone

    def set_schema(self, app: str, schema: str) -> None:
        def upsert(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(
                "INSERT INTO app_schemas VALUES (?, ?, ?) ON CONFLICT DO UPDATE"
                " SET schema = excluded.schema, updated = excluded.updated",
                [app, schema, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)],
            )

        self._act(upsert)
        self.registry.schemas[app] = schema

    def backup(self, destination: Path) -> None:
        # On the writer thread, which makes every change to the file: a checkpoint moves the WAL
        # into the file, and until this job ends no commit (or automatic checkpoint) can touch
        # either, so a plain copy is one consistent state. Readers go on meanwhile (they never
        # write to the file); writers queue for the copy's duration: about 0.1 s for a 270 MB
        # store, where DuckDB's COPY FROM DATABASE took 17 s (docs/deployment.md).
        if destination.exists():
            raise UsageError(f"{destination} already exists")

        def copy(con: duckdb.DuckDBPyConnection) -> None:
            con.execute("CHECKPOINT")
            shutil.copyfile(self.path, destination)
            wal = Path(self.path + ".wal")
            if wal.exists():  # left by a checkpoint DuckDB skipped: the copy replays it when opened
                shutil.copyfile(wal, str(destination) + ".wal")

        try:
            self._act(copy)
        except BaseException:
            destination.unlink(missing_ok=True)  # never leave a partial copy that looks whole
            Path(str(destination) + ".wal").unlink(missing_ok=True)
            raise

    def _act(self, action: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """Run one change on the writer thread, in its own transaction, and wait for it."""
        future: Future[Any] = Future()
        self._submit(_Job(future, action=action))
        return future.result()

    def _submit(self, job: _Job) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        self._queue.put(job)

    def _run(self, con: duckdb.DuckDBPyConnection) -> None:
        stopping = False
        while not stopping:
            jobs: list[_Job] = []
            rows = 0
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, _Job)
                jobs.append(item)
                rows += len(item.events)
                if rows >= MAX_GROUP_ROWS:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            try:
                # Events first: a forget or an app removal queued with them then deletes them too.
                self._commit_events(con, [j for j in jobs if j.events])
                self._run_actions(con, [j for j in jobs if j.action is not None])
            except Exception as exc:  # the writer must outlive any failure, or every later write hangs
                for job in jobs:
                    _fail(job, StoreUnavailable(f"write failed: {exc}"))
        con.close()

    def _run_actions(self, con: duckdb.DuckDBPyConnection, jobs: list[_Job]) -> None:
        for job in jobs:
            assert job.action is not None
            try:
                con.execute("BEGIN")
                result = job.action(con)
                con.execute("COMMIT")
                if isinstance(result, _AfterCommit):
                    result.then()
                    result = result.result
            except Exception as exc:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                _fail(job, exc if isinstance(exc, FootfallError) else StoreUnavailable(f"write failed: {exc}"))
            else:
                _done(job, result)

    def _commit_events(self, con: duckdb.DuckDBPyConnection, jobs: list[_Job]) -> None:
        """Commit the group in one transaction. When the engine refuses the data (not when it is
        unavailable), each job is committed alone, so one bad record fails no one else's.

        Each job's future gets the indexes of its records that were not stored: refused by the
        engine, or of an app removed since they were accepted (so a removal is final whatever
        order the writer sees it in; the app may be added again later). Any other failure fails
        every job of the group whole.
        """
        if not jobs:
            return
        for job in jobs:
            job.gone = tuple(i for i, event in enumerate(job.events) if event.app in self._removed_apps)
        try:
            self._insert(con, [event for job in jobs for event in _kept(job)])
        except _REFUSED_DATA:
            for job in jobs:
                self._commit_alone(con, job)
            return
        except Exception as exc:
            failure = StoreUnavailable(f"commit failed: {exc}")
            for job in jobs:
                _fail(job, failure)
            return
        for job in jobs:
            _done(job, job.gone)

    def _commit_alone(self, con: duckdb.DuckDBPyConnection, job: _Job) -> None:
        """One job in one transaction: all its storable records, or none of them.

        If the engine refuses some, each record is first tried in a transaction that is rolled
        back; then the others are committed together. A failure midway thus never leaves part
        of a request stored while the request is answered as failed (and retried).
        """
        events = _kept(job)
        try:
            try:
                self._insert(con, events)
                refused: list[int] = []
            except _REFUSED_DATA:
                kept = [i for i in range(len(job.events)) if i not in job.gone]
                refused = [i for i in kept if not self._accepts(con, job.events[i])]
                try:
                    self._insert(con, [job.events[i] for i in kept if i not in refused])
                except _REFUSED_DATA:  # refused only together: none of them can be stored
                    refused = kept
        except Exception as exc:
            _fail(job, StoreUnavailable(f"commit failed: {exc}"))
            return
        _done(job, tuple(sorted((*job.gone, *refused))))

    def _accepts(self, con: duckdb.DuckDBPyConnection, event: EventRecord) -> bool:
        """Whether the engine takes this record, tried in a transaction that is rolled back."""
        columns, _ = self._columns([event])
        con.execute("BEGIN")
        try:
            con.execute(_INSERT_SQL, columns)
        except _REFUSED_DATA:
            return False
        finally:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
        return True

    def _columns(self, events: Sequence[EventRecord]) -> tuple[list[list[Any]], dict[tuple[str, int], dt.datetime]]:
        """The insert's columns, each run's first event flagged; and the runs they hold."""
        columns: list[list[Any]] = [[] for _ in _INSERT_COLUMNS]
        seen: dict[tuple[str, int], dt.datetime] = {}  # runs in this insert; remembered once it commits
        for event in events:
            for index, column in enumerate(EVENT_COLUMNS):
                columns[index].append(getattr(event, column))
            session = record_key(event.session)
            run = (event.app, session) if session is not None else None
            columns[-3].append(record_key(event.install))
            columns[-2].append(session)
            columns[-1].append(run is not None and run not in self._runs and run not in seen)
            if run is not None:
                seen[run] = event.received
        return columns, seen

    def _insert(self, con: duckdb.DuckDBPyConnection, events: Sequence[EventRecord]) -> None:
        """Insert in one transaction; rolled back and raised on failure."""
        if not events:
            return
        columns, seen = self._columns(events)
        try:
            con.execute("BEGIN")
            con.execute(_INSERT_SQL, columns)
            con.execute("COMMIT")
        except Exception:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        self._remember_runs(seen)

    def _remember_runs(self, seen: Mapping[tuple[str, int], dt.datetime]) -> None:
        """After a commit: its runs are known (their later events start nothing); every 1,000
        commits, runs idle longer than RUN_MEMORY are forgotten, so they would count again."""
        self.commits += 1
        self._runs.update(seen)
        if self.commits % 1000 == 0:
            cutoff = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - RUN_MEMORY
            self._runs = {run: last for run, last in self._runs.items() if last >= cutoff}

    # -- reads --------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._cursor_lock:
            return self._con.cursor()

    def list_apps(self) -> list[App]:
        result = self.query("SELECT name, created FROM apps ORDER BY name")
        keys: dict[str, list[tuple[str, str]]] = {}
        for (kind, key), (app, _) in sorted(self.registry.keys.items()):
            keys.setdefault(app, []).append((kind, key))
        return [
            App(name, created, tuple(keys.get(name, ())), name in self.registry.schemas, self.timezone(name))
            for name, created in result.rows
        ]

    def query_now(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        cursor = self._cursor()
        try:
            cursor.execute(sql, dict(params or {}))
            columns = [d[0] for d in cursor.description or ()]
            return QueryResult(columns, cursor.fetchall())
        except duckdb.Error as exc:
            raise StoreUnavailable(f"query failed: {exc}") from exc
        finally:
            cursor.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._writer.join()
        self._con.close()
