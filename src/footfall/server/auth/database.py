"""Where the accounts live: SQLite (a file in --data) or PostgreSQL (shared by collectors).

`AccountStore` writes one set of SQL, in SQLite's `?` style; this module runs it on either
engine. Each engine gives the same three things:

- `transaction()`: a write transaction that excludes every other one on the same database,
  as SQLite's `BEGIN IMMEDIATE` does. On PostgreSQL that is a transaction holding one
  advisory lock (`pg_advisory_xact_lock`), taken first: every collector's read-then-write
  (a login code used once, a failure counted before the password is checked) stays
  serialised across machines, exactly as in one SQLite file. Account transactions are a
  few small statements, so one lock costs little.
- the schema version (`PRAGMA user_version` in SQLite, a one-row table in PostgreSQL),
  so the same numbered migrations bring either up to date;
- `audit_order`: the column that orders audit lines written in the same microsecond.

PostgreSQL connections come from a small pool (`POOL_SIZE`), not one per thread: the
server's thread pool is larger than a database needs to serve it. A database that cannot be
reached is a `StoreUnavailable` (HTTP 503), never a traceback.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from footfall.server.errors import AccountsUnavailable, UsageError
from footfall.server.settings import scrubbed

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
POOL_SIZE = 4  # connections per process; transactions are serialised by one lock anyway
CONNECT_TIMEOUT_S = 10  # to reach the server, and to wait for a free connection of the pool
LOCK_KEY = 0x466F6F7466616C6C  # "Footfall": the advisory lock every accounts transaction holds
# Things PostgreSQL has that the SQLite schema lacks: an ever-growing audit line number.
POSTGRES_AFTER_MIGRATION = {1: ("ALTER TABLE audit ADD COLUMN seq BIGSERIAL",)}


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Database(Protocol):
    """What the account SQL runs on, inside a transaction: SQLite's `?` placeholders on both."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Cursor: ...


class Engine(Protocol):
    audit_order: str

    def transaction(self) -> Any: ...  # a context manager of a Database

    def version(self, db: Database) -> int: ...

    def set_version(self, db: Database, version: int) -> None: ...

    def after_migration(self, version: int) -> Sequence[str]: ...

    def close(self) -> None: ...


def is_postgres(location: str) -> bool:
    return location.startswith(POSTGRES_SCHEMES)


class SqliteEngine:
    """The file in --data (WAL mode); one connection per thread, as SQLite needs."""

    audit_order = "rowid"

    def __init__(self, path: Path, connection: sqlite3.Connection | None = None) -> None:
        self.path = path
        self._local = threading.local()
        self._given = connection  # a caller's own connection (`accounts.migrate_schema`), used as is

    def connection(self) -> sqlite3.Connection:
        if self._given is not None:
            return self._given
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with sqlite_transaction(self.connection()) as db:
            yield db

    def version(self, db: Database) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def set_version(self, db: Database, version: int) -> None:
        db.execute(f"PRAGMA user_version = {version:d}")

    def after_migration(self, version: int) -> Sequence[str]:
        return ()

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


@contextmanager
def sqlite_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction on an autocommit connection (`isolation_level=None`)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class _PostgresDatabase:
    """A psycopg connection that takes the account SQL as written: `?` becomes `%s`."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self._connection.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))
        return cursor


class PostgresEngine:
    audit_order = "seq"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise UsageError("--accounts postgresql://... needs psycopg: pip install 'footfall[server]'") from None
        self._psycopg = psycopg
        self.url = url
        self._idle: list[Any] = []
        self._guard = threading.Lock()
        self._slots = threading.BoundedSemaphore(POOL_SIZE)

    def _take(self) -> Any:
        with self._guard:
            if self._idle:
                return self._idle.pop()
        try:
            return self._psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except self._psycopg.Error as exc:
            # libpq may quote the URL or a token of it: never its password.
            message = scrubbed(str(exc), self.url)
            raise AccountsUnavailable(f"the accounts database cannot be reached: {message}".strip()) from None

    def _give(self, connection: Any) -> None:
        if connection.closed or connection.broken:
            return
        with self._guard:
            self._idle.append(connection)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        if not self._slots.acquire(timeout=CONNECT_TIMEOUT_S):
            raise AccountsUnavailable("the accounts database is busy: no free connection")
        try:
            connection = self._take()
            try:
                with connection.transaction():
                    connection.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                    yield _PostgresDatabase(connection)
            except self._psycopg.Error as exc:
                message = scrubbed(str(exc), self.url)
                raise AccountsUnavailable(f"the accounts database failed: {message}".strip()) from None
            finally:
                self._give(connection)
        finally:
            self._slots.release()

    def version(self, db: Database) -> int:
        db.execute("CREATE TABLE IF NOT EXISTS accounts_schema (version INTEGER NOT NULL)")
        row = db.execute("SELECT max(version) FROM accounts_schema").fetchone()
        return int(row[0] or 0)

    def set_version(self, db: Database, version: int) -> None:
        db.execute("DELETE FROM accounts_schema")
        db.execute("INSERT INTO accounts_schema VALUES (?)", (version,))

    def after_migration(self, version: int) -> Sequence[str]:
        return POSTGRES_AFTER_MIGRATION.get(version, ())

    def close(self) -> None:
        with self._guard:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def open_engine(location: Path | str) -> Engine:
    """The engine of an --accounts setting: a postgresql:// URL, or the SQLite file's path."""
    if isinstance(location, str) and is_postgres(location):
        return PostgresEngine(location)
    return SqliteEngine(Path(location))


def migrate(engine: Engine, migrations: Sequence[str]) -> None:
    """Bring the database up to the newest schema, one migration per transaction."""
    for version, script in enumerate(migrations, start=1):
        with engine.transaction() as db:
            if engine.version(db) >= version:
                continue
            for statement in [*script.split(";"), *engine.after_migration(version)]:
                if statement.strip():
                    db.execute(statement)
            engine.set_version(db, version)
