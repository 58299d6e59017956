"""ClickHouse as the store: one server (or, later, a cluster) over its HTTP interface.

`footfall serve --store clickhouse://HOST:PORT/DB` (docs/stores.md). It works on ClickHouse
18.16, Debian's, and on current servers (the report SQL is the same; `query.dialect`).

- **Tables.** A migrations registry with DuckDB's version numbers. `events` is a MergeTree
  partitioned by month and ordered by (app, time), so a report reads one app's range; its
  times are whole seconds (`DateTime`; 18.16 has no `DateTime64`). The registry tables (apps,
  keys, schemas) are ReplacingMergeTrees read with FINAL: a change or a removal (a tombstone)
  is a newer row.
- **Writes.** One writer at a time (a lock), as in DuckDB: `write` inserts a batch as one
  `JSONEachRow` insert, with the install and session keys and the run starts computed the
  same way as DuckDB's writer (`record_key`; the first stored event of each run with no event
  stored from `RUN_MEMORY` before it), the stored events asked at each write (`_stored_runs`).
- **Segments.** `load_segment` streams the sealed segment file to the server as one
  `INSERT ... FORMAT JSONEachRow` into a staging table, then copies its rows into `events`
  in one `INSERT ... SELECT` (one part: atomic), with the segment's id in their `segment`
  column, the keys computed by the server and the run starts flagged, and records the id in
  `loaded_segments`. Exactly once: a segment is skipped when `loaded_segments` holds its id; a
  load records that it began before its copy, and only a load that finds such a record searches
  `events` for rows of an earlier attempt (`_begun`). The check and the insert cannot race,
  because one store has one loader and loads run under the writer lock.
- **Shared registry.** Several collectors may serve one database (docs/stores.md, "Shared
  configuration"). Each keeps the registry in memory and reloads it every `REGISTRY_REFRESH_S`,
  and at once when a request names an app or key it lacks: single-flight and at most once per
  `MISS_REFRESH_INTERVAL_S`, so a client sending unknown apps costs ClickHouse a few small
  queries a second at most. A reload only adds what is newer than what the store knows, so a
  stale read (a lagging replica) undoes nothing; an app removed through another collector
  (its tombstone read) is refused here too.
- **Forget.** `ALTER TABLE ... DELETE` (a mutation), after counting the rows it will match;
  the call returns once the mutation is done.
- **Parameters.** 18.16's HTTP interface has no query parameters, so each `$name` is written
  into the SQL as an escaped literal (`literal`), never as pasted text.
- **Cluster.** `clickhouse://HOST:PORT/DB?cluster=NAME` (`&replicated=1`, or detected from the
  cluster's replicas): every table is a local table on each node (created `ON CLUSTER`, through
  ZooKeeper's distributed DDL queue) under a `Distributed` table of the plain name, so the SQL
  above is unchanged (`Layout`). `events` is sharded by the install key; the registry tables sit
  on the first shard. Inserts wait for the shards (`insert_distributed_sync`), and subqueries over
  the cluster run once on the initiator (`distributed_product_mode=global`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hmac
import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from footfall.server.errors import SegmentRefused, StoreUnavailable, UsageError
from footfall.server.settings import redacted_url
from footfall.server.stores.base import (
    EVENT_COLUMNS,
    App,
    AppRegistry,
    EventRecord,
    EventStore,
    QueryResult,
    record_key,
)

log = logging.getLogger("footfall.clickhouse")

SCHEME = "clickhouse://"
DEFAULT_PORT = 8123
REQUEST_TIMEOUT_S = 300.0  # a large load or report on a busy server
CLOSE_WAIT_S = 10.0  # how long close() waits for a registry reload under way
MUTATION_TIMEOUT_S = 300.0  # a forget waits this long for its delete to finish
MUTATION_POLL_S = 0.05
REPLICAS_TIMEOUT_S = 60.0  # a migration waits this long for a cluster's replicas to be active
UPLOAD_CHUNK_BYTES = 1024 * 1024
RUN_MEMORY = dt.timedelta(hours=73)  # as DuckDB's: a run idle this long counts again
MAX_QUERY_BYTES = 256 * 1024 * 1024  # a segment's run starts go in the query text
REGISTRY_REFRESH_S = 3.0  # another collector's change is seen within this (the requirement: 10 s)
MISS_REFRESH_INTERVAL_S = 1.0  # an unknown app or key reloads the registry at most this often
REGISTRY_MAX_LAG_S = 1  # a registry read passes over a replica lagging more than this, if another is fresher
REGISTRY_READ_SETTINGS = {"max_replica_delay_for_distributed_queries": str(REGISTRY_MAX_LAG_S)}
ATTEMPT_PREFIX = "attempt:"  # in loaded_segments: a load of the id that follows began (`_begun`)
SECRETS_TABLE = "instance_secrets"  # the fingerprint of the install key the first collector used
_DATABASE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # a database's or a cluster's name
_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_CODE = re.compile(r"Code: (\d+)")
# Error codes of data the server cannot read (not of being unavailable): a parse failure, a
# type mismatch, a value out of range, an unknown field.
UNKNOWN_DATABASE = 81
NOT_CLICKHOUSE = "but not as ClickHouse's HTTP interface does: is it its HTTP port (8123 by default)?"
REFUSED_CODES = frozenset({6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 130, 131, 321})
# The columns of few distinct values are dictionary-encoded (LowCardinality) where the server
# has that type without a setting (MODERN_SERVER and newer); 18.16 keeps them String
# (`Layout.migration`). Tables made on 18.16 keep String after an upgrade of the server.
MODERN_SERVER = (20, 1)
TTL_SERVER = (21, 8)  # has MODIFY and REMOVE TTL and materialize_ttl_after_modify
LOW_CARDINALITY: tuple[str, ...] = ("app", "app_version", "name", "source", "os", "os_version", "arch")
LOW_CARDINALITY += ("runtime", "runtime_version", "ci", "container", "country")
LOW_CARDINALITY_STRING = "LowCardinality(String)"
_STAGING_TYPES = {"time": "DateTime('UTC')", "received": "DateTime('UTC')"}
_EVENT_TYPES = _STAGING_TYPES | dict.fromkeys(LOW_CARDINALITY, LOW_CARDINALITY_STRING)
# What a DateTime holds (seconds since 1970 in 32 bits): 18.16 silently wraps or zeroes a time
# outside it, so such an event is refused instead (DuckDB would hold it).
EARLIEST_TIME = dt.datetime(1970, 1, 2)
LATEST_TIME = dt.datetime(2105, 12, 31)
_COLUMNS_SQL = ", ".join(f"{c} {_EVENT_TYPES.get(c, 'String')}" for c in EVENT_COLUMNS)
_STAGING_COLUMNS_SQL = ", ".join(f"{c} {_STAGING_TYPES.get(c, 'String')}" for c in EVENT_COLUMNS)


def key_sql(column: str) -> str:
    """`record_key` in ClickHouse SQL: the first 16 hex digits of a hash as a UInt64, or of its
    SHA-256 when it is not hex; NULL when empty."""
    head = f"substring({column}, 1, 16)"
    digest = f"if(match({head}, '^[0-9a-f]{{16}}$'), unhex({head}), substring(SHA256({column}), 1, 8))"
    return f"if({column} = '', NULL, reinterpretAsUInt64(reverse({digest})))"


# Ordered schema migrations, numbered as DuckDB's (stores.duckdb): append only.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            "CREATE TABLE IF NOT EXISTS apps (name String, created DateTime('UTC'), updated UInt64, deleted UInt8)"
            " ENGINE = ReplacingMergeTree(updated) ORDER BY name",
            f"CREATE TABLE IF NOT EXISTS events ({_COLUMNS_SQL})"
            " ENGINE = MergeTree PARTITION BY toYYYYMM(time) ORDER BY (app, time)",
        ),
    ),
    (
        2,
        (
            "CREATE TABLE IF NOT EXISTS app_keys (app String, kind String, key String, secret_hash String,"
            " updated UInt64, deleted UInt8) ENGINE = ReplacingMergeTree(updated) ORDER BY (kind, key)",
            "CREATE TABLE IF NOT EXISTS app_schemas (app String, schema String, updated UInt64, deleted UInt8)"
            " ENGINE = ReplacingMergeTree(updated) ORDER BY app",
        ),
    ),
    (3, ("ALTER TABLE events ADD COLUMN install_key Nullable(UInt64), ADD COLUMN session_key Nullable(UInt64)",)),
    (4, ("ALTER TABLE events ADD COLUMN run_start UInt8 DEFAULT 0",)),
    (5, ("ALTER TABLE apps ADD COLUMN timezone String DEFAULT 'UTC'",)),
    (
        6,
        (
            "ALTER TABLE events ADD COLUMN segment String DEFAULT ''",
            "CREATE TABLE IF NOT EXISTS loaded_segments (id String, loaded DateTime('UTC'), events UInt64)"
            " ENGINE = MergeTree ORDER BY id",
        ),
    ),
)


class ClickHouseError(Exception):
    """The server answered with an error."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def refused_data(self) -> bool:
        return self.code in REFUSED_CODES


def error_from(text: str) -> ClickHouseError:
    match = _CODE.search(text)
    return ClickHouseError(int(match.group(1)) if match else None, text.strip()[:2000])


class Transport(Protocol):
    """How SQL reaches a ClickHouse engine: the HTTP interface here; chdb (in-process) in tests."""

    def run(self, sql: str, body: Iterable[bytes] | None = None, settings: Mapping[str, str] | None = None) -> str:
        """Run one statement (with `body` as its data, for an INSERT ... FORMAT); its output as text.
        Raises ClickHouseError when the engine refuses it, StoreUnavailable when it cannot be reached."""
        ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Address:
    host: str
    port: int
    database: str
    user: str = "default"
    password: str = ""
    cluster: str = ""  # a cluster of the server's remote_servers: tables ON CLUSTER, under Distributed
    replicated: bool | None = None  # ReplicatedMergeTree; None: when a shard of the cluster has replicas

    @property
    def settings(self) -> dict[str, str]:
        """Settings of every request: on a cluster, an insert returns once the shards hold it (so a
        loaded segment is on them); a replicated table keeps a block equal to an earlier one (two
        equal batches are two batches, and a segment loaded again after its rows were deleted is
        stored again); and a subquery over the cluster runs once, on the node asked, with its
        result sent to the shards (GLOBAL IN / JOIN: right wherever the rows are)."""
        if not self.cluster:
            return {}
        return {"insert_distributed_sync": "1", "insert_deduplicate": "0", "distributed_product_mode": "global"}

    @property
    def http(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __str__(self) -> str:  # never the password
        options = f"?cluster={self.cluster}" if self.cluster else ""
        if self.cluster and self.replicated is not None:
            options += f"&replicated={int(self.replicated)}"
        return f"{SCHEME}{self.host}:{self.port}/{self.database}{options}"


def parse_url(url: str) -> Address:
    """clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?cluster=NAME[&replicated=0|1]], or a clear error."""
    shown = redacted_url(url)
    if not url.startswith(SCHEME):
        raise UsageError(f"a ClickHouse store is {SCHEME}HOST:PORT/DATABASE, not {shown!r}")
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise UsageError(f"the port in {shown!r} is not a number from 1 to 65535") from None
    database = parts.path.strip("/")
    if not parts.hostname or not _DATABASE.fullmatch(database) or parts.fragment:
        raise UsageError(
            f"a ClickHouse store is {SCHEME}[USER[:PASSWORD]@]HOST:PORT/DATABASE (a database name of letters,"
            " digits and _; a password's @, / or : written %40, %2F, %3A)"
        )
    try:
        options = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
    except ValueError:
        raise UsageError(f"the options of {shown!r} are not NAME=VALUE pairs joined by &") from None
    named = "cluster" in options
    cluster = options.pop("cluster", "")
    replicated = options.pop("replicated", None)
    if options:
        raise UsageError(f"unknown ClickHouse store options: {', '.join(sorted(options))} (known: cluster, replicated)")
    if named and not _DATABASE.fullmatch(cluster):
        raise UsageError("cluster= names a cluster of the server's remote_servers (letters, digits and _)")
    if replicated not in (None, "0", "1") or (replicated is not None and not cluster):
        raise UsageError("replicated= is 0 or 1, and only with cluster=")
    return Address(
        parts.hostname,
        port,
        database,
        unquote(parts.username or "default"),
        unquote(parts.password or ""),
        cluster,
        None if replicated is None else replicated == "1",
    )


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the tables are: one server's plain tables, or, on a cluster, each table a local table
    `NAME_local` on every node (created and altered ON CLUSTER) under a `Distributed` table `NAME`.

    `events` is sharded by the install key, so an install's events sit on one shard (its distinct
    counts are exact on that shard); events without an install go by their session, or spread.
    The registry tables (apps, keys, schemas, loaded segments, migrations) go whole to the first
    shard (a constant key): ReplacingMergeTree replaces a row only within one table, so a row
    and its newer version must sit together for FINAL to pick the newer. Read through their
    Distributed table, they are the same for every collector, whichever node it asks."""

    database: str
    cluster: str = ""
    replicated: bool = False
    modern: bool = False  # the server is MODERN_SERVER or newer: LowCardinality and TTL

    def local(self, table: str) -> str:
        """The table that holds a table's rows on a node: to alter, delete from or drop partitions of."""
        return f"{self.database}.{table}_local" if self.cluster else table

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""

    def migration(self, statement: str) -> list[str]:
        """A migration's statement (written for one server) on this layout."""
        if not self.modern:
            statement = statement.replace(LOW_CARDINALITY_STRING, "String")
        if not self.cluster:
            return [statement]
        created = _CREATE.fullmatch(statement)
        if created:
            table, columns, engine, arguments, rest = (part or "" for part in created.groups())
            if self.replicated:
                path = f"'/clickhouse/tables/{{shard}}/{self.database}/{table}', '{{replica}}'"
                engine, arguments = "Replicated" + engine, path + (f", {arguments}" if arguments else "")
            return [
                f"CREATE TABLE IF NOT EXISTS {self.local(table)}{self.on_cluster} ({columns})"
                f" ENGINE = {engine}({arguments}){rest}"
            ]
        altered = _ALTER.fullmatch(statement)
        if altered:
            return [f"ALTER TABLE {self.local(altered.group(1))}{self.on_cluster} {altered.group(2)}"]
        raise ValueError(f"no cluster form for the migration {statement[:60]!r}")

    def distributed(self, tables: Iterable[str]) -> list[str]:
        """The Distributed tables over the local ones, made anew (they hold no rows: inserts are
        synchronous) so that they have the local tables' columns after a migration."""
        statements = []
        for table in tables:
            key = SHARDING_KEYS.get(table, "0")
            statements.append(f"DROP TABLE IF EXISTS {self.database}.{table}{self.on_cluster}")
            statements.append(
                f"CREATE TABLE {self.database}.{table}{self.on_cluster} AS {self.local(table)}"
                f" ENGINE = Distributed({self.cluster}, {self.database}, {table}_local, {key})"
            )
        return statements


_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*)\) ENGINE = (\w+)(?:\((.*?)\))?( .*)?", re.DOTALL)
_ALTER = re.compile(r"ALTER TABLE (\w+) (.*)", re.DOTALL)
_TABLE = re.compile(r"(?:CREATE TABLE IF NOT EXISTS|ALTER TABLE) (\w+)")


def _table_of(statement: str) -> str:
    match = _TABLE.match(statement)
    assert match, statement  # migrations create or alter a table
    return match.group(1)


_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, applied DateTime('UTC'))"
    " ENGINE = MergeTree ORDER BY version"
)
# A Distributed table's key picks each row's shard; a table not named here goes whole to the first.
SHARDING_KEYS = {"events": "ifNull(install_key, ifNull(session_key, cityHash64(name, time, segment)))"}


# A registry entry: ("app", name), ("key", kind, key) or ("schema", app).
Entry = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Version:
    """The newest row seen of a registry entry: its version (`updated`), whether it is a removal,
    and its value (an app's time zone, a key's (app, secret hash), an app's schema)."""

    version: int
    deleted: bool
    value: Any


def _registry_of(known: Mapping[Entry, Version]) -> AppRegistry:
    registry = AppRegistry()
    for entry, row in known.items():
        if row.deleted:
            continue
        if entry[0] == "app":
            registry.apps.add(entry[1])
            if row.value != "UTC":
                registry.timezones[entry[1]] = row.value
        elif entry[0] == "key":
            registry.keys[(entry[1], entry[2])] = row.value
        else:
            registry.schemas[entry[1]] = row.value
    return registry


class HttpTransport:
    """ClickHouse's HTTP interface: the statement in the body (or, with data, in the URL), one
    connection pool per store."""

    def __init__(self, address: Address) -> None:
        import httpx

        self._httpx = httpx
        self.address = address
        self._client = httpx.Client(
            base_url=address.http,
            timeout=REQUEST_TIMEOUT_S,
            auth=(address.user, address.password) if address.password or address.user != "default" else None,
        )

    def run(self, sql: str, body: Iterable[bytes] | None = None, settings: Mapping[str, str] | None = None) -> str:
        params = {"database": self.address.database, **self.address.settings, **(settings or {})}
        if body is None:
            content: Iterable[bytes] | bytes = sql.encode()
        else:
            params["query"] = sql
            content = body
        try:
            answer = self._client.post("/", params=params, content=content)
        except self._httpx.HTTPError as exc:
            raise StoreUnavailable(f"ClickHouse at {self.address} cannot be reached: {exc}") from exc
        if answer.status_code != 200:
            error = error_from(answer.text)
            if error.code is None:  # no "Code: N": another server on that port
                raise StoreUnavailable(f"{self.address} answered HTTP {answer.status_code}, {NOT_CLICKHOUSE}")
            raise error
        return answer.text

    def close(self) -> None:
        self._client.close()


def literal(value: Any) -> str:
    """A parameter's value as a ClickHouse literal: strings escaped, times as UTC."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        if isinstance(value, int) or math.isfinite(value):
            text = repr(value)
        else:
            text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        # A negative number in parentheses: after a minus sign, a bare "-5" would start a comment ("--").
        return f"({text})" if text.startswith("-") else text
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return f"toDateTime('{value.strftime('%Y-%m-%d %H:%M:%S')}', 'UTC')"
    if isinstance(value, dt.date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    raise TypeError(f"no ClickHouse literal for {type(value).__name__}")


def bind(sql: str, params: Mapping[str, Any] | None) -> str:
    """`sql` with each `$name` outside quotes replaced by the literal of `params[name]`."""
    out: list[str] = []
    position, quote = 0, ""
    index = 0
    while index < len(sql):
        char = sql[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "$":
            match = _PARAMETER.match(sql, index)
            if match:
                name = match.group(1)
                if params is None or name not in params:
                    raise ValueError(f"no value for the parameter ${name}")
                out.append(sql[position:index])
                out.append(literal(params[name]))
                position = index = match.end()
                continue
        index += 1
    out.append(sql[position:])
    return "".join(out)


def _convert(value: Any, kind: str) -> Any:
    """A JSONCompact value of ClickHouse type `kind` as the Python value DuckDB would give."""
    if value is None:
        return None
    while kind.startswith(("Nullable(", "LowCardinality(")):
        kind = kind[kind.index("(") + 1 : -1]
    if kind.startswith("Array("):
        return [_convert(item, kind[6:-1]) for item in value]
    if kind == "Date":
        return dt.date.fromisoformat(value)
    if kind.startswith("DateTime"):
        return dt.datetime.fromisoformat(value)
    if kind.startswith(("Int", "UInt")):
        return int(value)
    if kind.startswith(("Float", "Decimal")):
        return float(value)
    return value


def _storable(event: EventRecord) -> bool:
    """Whether a DateTime holds the event's times."""
    return all(EARLIEST_TIME <= moment.replace(tzinfo=None) <= LATEST_TIME for moment in (event.time, event.received))


def _compact(props: str) -> str:
    """Props as compact JSON, as the collector writes them (visitParamExtract* read only that)."""
    try:
        return json.dumps(json.loads(props), separators=(",", ":"), ensure_ascii=True)
    except ValueError:
        return props


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(UPLOAD_CHUNK_BYTES):
            yield chunk


def _lines(path: Path) -> int:
    """How many non-empty lines a file holds."""
    with path.open("rb") as file:
        return sum(1 for line in file if line.strip())


def load_query_id(segment: str) -> str:
    """The query id of the copy of a segment's (or a migration batch's) rows into `events`."""
    return "footfall-load:" + segment


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _version_tuple(version: str) -> tuple[int, ...]:
    """'18.16.1' -> (18, 16, 1); a part that is not a number ends it."""
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def _seconds(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class ClickHouseStore(EventStore):
    dialect = "clickhouse"

    def __init__(self, url: str, transport: Transport | None = None) -> None:
        self.address = parse_url(url)
        self._transport: Transport = transport or HttpTransport(self.address)
        self._query_ids = isinstance(self._transport, HttpTransport)  # a query id is an HTTP parameter
        try:
            self.server_version = str(self._rows("SELECT version()")[0][0])
            self.layout = self._layout()
            self._migrate()
            # The newest row seen of each registry entry, tombstones included (`_merge`).
            self._known: dict[Entry, Version] = self._read_registry()
            self.registry = _registry_of(self._known)
        except BaseException:
            self._transport.close()
            raise
        self._lock = threading.RLock()  # one change at a time, as DuckDB's single writer
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="footfall.clickhouse")
        self._closed = False
        self._version = 0  # of registry rows written by this process
        self._refreshing = threading.Lock()  # one registry reload at a time
        self._refreshed_at = time.monotonic()  # when the last reload started
        self._stop_refresh = threading.Event()
        self._refresher = threading.Thread(target=self._refresh_loop, name="footfall.registry", daemon=True)
        self._refresher.start()

    # -- plumbing -----------------------------------------------------------------

    def _run(self, sql: str, params: Mapping[str, Any] | None = None, **settings: str) -> str:
        try:
            return self._transport.run(bind(sql, params), settings=settings or None)
        except ClickHouseError as exc:
            if exc.code == UNKNOWN_DATABASE:
                database = self.address.database
                raise StoreUnavailable(
                    f"ClickHouse at {self.address} has no database {database}: create it with"
                    f' clickhouse-client --query "CREATE DATABASE {database}"'
                ) from exc
            raise StoreUnavailable(f"ClickHouse refused a statement: {exc}") from exc

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None, **settings: str) -> list[tuple[Any, ...]]:
        return self._result(sql, params, **settings).rows

    def _result(self, sql: str, params: Mapping[str, Any] | None = None, **settings: str) -> QueryResult:
        # Reads run read-only (2: settings may change, data may not): a report cannot write.
        text = self._run(
            sql + " FORMAT JSONCompact", params, readonly="2", output_format_json_quote_64bit_integers="0", **settings
        )
        try:
            document = json.loads(text)
            kinds = [column["type"] for column in document["meta"]]
            data = document["data"]
        except (ValueError, KeyError, TypeError):
            if _CODE.search(text):  # ClickHouse's own error, written after the answer had begun
                raise StoreUnavailable(f"ClickHouse failed while answering: {text[-2000:].strip()}") from None
            raise StoreUnavailable(f"{self.address} answered, {NOT_CLICKHOUSE}") from None
        rows = [tuple(_convert(v, k) for v, k in zip(row, kinds, strict=True)) for row in data]
        return QueryResult([column["name"] for column in document["meta"]], rows)

    def _layout(self) -> Layout:
        cluster = self.address.cluster
        modern = _version_tuple(self.server_version) >= MODERN_SERVER
        if not cluster:
            return Layout(self.address.database, modern=modern)
        ((nodes, replicas),) = self._rows(
            "SELECT count(*), max(replica_num) FROM system.clusters WHERE cluster = $name", {"name": cluster}
        )
        if not nodes:
            raise UsageError(
                f"the ClickHouse server at {self.address.host}:{self.address.port} has no cluster {cluster!r}"
            )
        replicated = self.address.replicated
        return Layout(self.address.database, cluster, replicas > 1 if replicated is None else replicated, modern)

    def _migrate(self) -> None:
        """The migrations not yet applied, in order; on a cluster, once for all its nodes (its
        migrations table is one, on the first shard) and ON CLUSTER."""
        layout = self.layout
        if layout.cluster and not self._rows(
            "SELECT 1 FROM system.tables WHERE database = currentDatabase() AND name = 'schema_migrations'"
        ):
            for statement in [*layout.migration(_MIGRATIONS_TABLE), *layout.distributed(["schema_migrations"])]:
                self._run(statement)
        elif not layout.cluster:
            self._run(_MIGRATIONS_TABLE)
        done = {row[0] for row in self._rows("SELECT version FROM schema_migrations")}
        changed: set[str] = set()
        for version, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                for step in layout.migration(statement):
                    self._run(step)
                changed.add(_table_of(statement))
                if layout.replicated:
                    self._await_replicas(_table_of(statement))
            self._run("INSERT INTO schema_migrations VALUES ($version, $now)", {"version": version, "now": _utc_now()})
        if layout.cluster:
            # The Distributed tables over the local ones, once the columns their keys name exist:
            # anew after a migration changed a table (for its columns), and any missing (a crash).
            present = {
                row[0]
                for row in self._rows(
                    "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'Distributed'"
                )
            }
            tables = {_table_of(statement) for _, statements in MIGRATIONS for statement in statements}
            for step in layout.distributed(sorted(changed | (tables - present))):
                self._run(step)

    def _await_replicas(self, table: str) -> None:
        """Wait until every replica of a table it just created or altered is active: an ALTER
        ON CLUSTER waits for the replicas, and fails on one that is not active yet (just created)."""
        deadline = time.monotonic() + REPLICAS_TIMEOUT_S
        while self._rows(
            "SELECT 1 FROM system.replicas WHERE database = currentDatabase() AND table = $table"
            " AND active_replicas < total_replicas",
            {"table": table + "_local"},
        ):
            if time.monotonic() > deadline:
                raise StoreUnavailable(
                    f"a replica of {table} stayed inactive for {REPLICAS_TIMEOUT_S:.0f} s:"
                    " migrations need every replica"
                )
            time.sleep(MUTATION_POLL_S)

    def _read_registry(self) -> dict[Entry, Version]:
        """The newest row of each registry entry, removals (tombstones) included. On a replicated
        layout, a replica lagging more than `REGISTRY_MAX_LAG_S` is passed over when another is
        fresher; when all lag, the read answers anyway, and `_merge` keeps it from undoing anything."""
        fresh: dict[Entry, Version] = {}
        read = REGISTRY_READ_SETTINGS if self.layout.replicated else {}
        for name, zone, version, deleted in self._rows(
            "SELECT name, timezone, updated, deleted FROM apps FINAL", None, **read
        ):
            fresh[("app", name)] = Version(int(version), bool(deleted), zone)
        for app, kind, key, secret, version, deleted in self._rows(
            "SELECT app, kind, key, secret_hash, updated, deleted FROM app_keys FINAL", None, **read
        ):
            fresh[("key", kind, key)] = Version(int(version), bool(deleted), (app, secret))
        for app, schema, version, deleted in self._rows(
            "SELECT app, schema, updated, deleted FROM app_schemas FINAL", None, **read
        ):
            fresh[("schema", app)] = Version(int(version), bool(deleted), schema)
        return fresh

    # -- the shared registry --------------------------------------------------------

    def refresh_registry(self) -> None:
        """Reload the registry now (another collector may have changed it); raises StoreUnavailable."""
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        self._refreshed_at = time.monotonic()
        fresh = self._read_registry()
        if not self._lock.acquire(timeout=REGISTRY_REFRESH_S):
            return  # a long write (a forget, a segment) holds it: the next reload is soon
        try:
            before = self.registry.apps
            self._merge(fresh)
            # Only a tombstone removes an app: an app merely absent from the read stays.
            removed = before - self.registry.apps
        finally:
            self._lock.release()
        if self.on_removed is not None:
            for app in removed:
                self.on_removed(app)

    def _merge(self, rows: Mapping[Entry, Version]) -> None:
        """Take each row newer than the one known, and rebuild the registry (under the lock).

        A read may be older than what this store knows: a replica that lags, or a read that began
        before a change made here. So an entry is never dropped for being absent from a read, and a
        row never replaces a newer one: an app goes only by its removal's row (a tombstone)."""
        for entry, row in rows.items():
            known = self._known.get(entry)
            if known is None or row.version > known.version:
                self._known[entry] = row
        self.registry = _registry_of(self._known)

    def _note(self, entry: Entry, version: int, deleted: bool, value: Any) -> None:
        """A registry row this store just wrote (under the lock)."""
        self._merge({entry: Version(version, deleted, value)})

    @property
    def removed_apps(self) -> frozenset[str]:
        """Apps whose removal this store has seen: their events, even queued ones, are refused."""
        return frozenset(entry[1] for entry, row in self._known.items() if entry[0] == "app" and row.deleted)

    def _refresh_on_miss(self) -> None:
        if time.monotonic() - self._refreshed_at < MISS_REFRESH_INTERVAL_S:
            return
        if not self._refreshing.acquire(blocking=False):
            return  # a reload is under way: this request is answered from the registry as it is
        try:
            with contextlib.suppress(StoreUnavailable):
                self._refresh()
        finally:
            self._refreshing.release()

    def _refresh_loop(self) -> None:
        failing = False  # an outage is logged when it starts and when it ends, not every reload
        while not self._stop_refresh.wait(REGISTRY_REFRESH_S):
            try:
                self.refresh_registry()
            except StoreUnavailable as exc:
                if not failing:
                    log.warning("the app registry cannot be reloaded from ClickHouse (retrying): %s", exc)
                failing = True
            except Exception:  # the loop outlives any one reload: the registry keeps its last state
                log.exception("the app registry reload failed")
            else:
                if failing:
                    log.warning("the app registry is reloaded from ClickHouse again")
                failing = False

    def check_secrets(self, fingerprint: str, file: str) -> None:
        """Refuse to serve with another install key than the first collector on this database had.

        The first fingerprint ever written wins (the earliest row), so two first starts at once
        agree on one; the loser refuses. Kept out of the migrations: it is no event data.
        """
        layout = self.layout
        create = (
            f"CREATE TABLE IF NOT EXISTS {SECRETS_TABLE} (name String, fingerprint String, created UInt64)"
            " ENGINE = MergeTree ORDER BY name"
        )
        for statement in layout.migration(create):
            self._run(statement)
        if layout.cluster:  # one table for the cluster, on the first shard like the registry: every node sees it
            self._run(
                f"CREATE TABLE IF NOT EXISTS {layout.database}.{SECRETS_TABLE}{layout.on_cluster}"
                f" AS {layout.local(SECRETS_TABLE)}"
                f" ENGINE = Distributed({layout.cluster}, {layout.database}, {SECRETS_TABLE}_local, 0)"
            )
        earliest = (
            f"SELECT fingerprint FROM {SECRETS_TABLE} WHERE name = 'install_key' ORDER BY created, fingerprint LIMIT 1"
        )
        if not self._rows(earliest):
            self._run(
                f"INSERT INTO {SECRETS_TABLE} VALUES ('install_key', $fingerprint, $created)",
                {"fingerprint": fingerprint, "created": time.time_ns()},
            )
        stored = str(self._rows(earliest)[0][0])
        if not hmac.compare_digest(stored, fingerprint):
            raise UsageError(
                f"the store {self.address} is served with another install key than {file}'s: every collector"
                f" and command on one store needs the same secrets. Copy secrets.json from the data directory"
                f" of a collector already serving it over {file} (docs/deployment.md)"
            )

    def _next_version(self) -> int:
        """A version for a registry row: later than any this process wrote, and than the clock."""
        self._version = max(self._version + 1, time.time_ns())
        return self._version

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")

    # -- writes -------------------------------------------------------------------

    def write(self, events: Sequence[EventRecord]) -> Future[tuple[int, ...]]:
        self._check_open()
        if not events:
            future: Future[tuple[int, ...]] = Future()
            future.set_result(())
            return future
        return self._writer.submit(self._commit, list(events))

    def _commit(self, events: list[EventRecord]) -> tuple[int, ...]:
        with self._lock:
            # Not stored: the events of an app removed since they were accepted, and times out of range.
            removed = self.removed_apps
            gone = [i for i, event in enumerate(events) if event.app in removed or not _storable(event)]
            kept = [i for i in range(len(events)) if i not in gone]
            try:
                self._insert([events[i] for i in kept])
                return tuple(gone)
            except ClickHouseError as exc:
                if not exc.refused_data:
                    raise StoreUnavailable(f"commit failed: {exc}") from exc
            refused = []  # the engine refused some: each alone, so one bad record fails no other
            for i in kept:
                try:
                    self._insert([events[i]])
                except ClickHouseError as exc:
                    if not exc.refused_data:
                        raise StoreUnavailable(f"commit failed: {exc}") from exc
                    refused.append(i)
            return tuple(sorted((*gone, *refused)))

    def _insert(self, events: Sequence[EventRecord]) -> None:
        """One JSONEachRow insert (one part: all or nothing), run starts flagged as DuckDB's writer does."""
        if not events:
            return
        lines: list[bytes] = []
        in_runs = [(event, key) for event in events if (key := record_key(event.session)) is not None]
        seen = self._stored_runs(
            {(event.app, key) for event, key in in_runs},
            min((event.time.replace(tzinfo=None) for event, _ in in_runs), default=None),
        )
        for event in events:
            row: dict[str, Any] = {column: getattr(event, column) for column in EVENT_COLUMNS}
            row["time"], row["received"] = _seconds(event.time), _seconds(event.received)
            row["props"] = _compact(event.props)
            session = record_key(event.session)
            run = (event.app, session) if session is not None else None
            row["install_key"] = record_key(event.install)
            row["session_key"] = session
            row["run_start"] = int(run is not None and run not in seen)
            if run is not None:
                seen.add(run)
            lines.append(json.dumps(row, separators=(",", ":")).encode() + b"\n")
        self._transport.run("INSERT INTO events FORMAT JSONEachRow", [b"".join(lines)])

    def _stored_runs(self, runs: set[tuple[str, int]], earliest: dt.datetime | None) -> set[tuple[str, int]]:
        """The runs (app, session key) among `runs` with an event stored from RUN_MEMORY before
        `earliest` (the earliest time of the events to store) on: an event of any other run starts
        it. Asked of the stored events, not of this process's memory, so that several collectors on
        one database agree (docs/stores.md). The bound is in event time, the sort key after the app,
        so the lookup reads the last days of the runs' apps, however large `events` grows."""
        if not runs or earliest is None:
            return set()
        rows = self._rows(
            "SELECT DISTINCT app, session_key FROM events WHERE app IN (SELECT arrayJoin($apps))"
            " AND time >= $since AND session_key IN (SELECT arrayJoin(CAST($keys AS Array(UInt64))))",
            {
                "apps": sorted({app for app, _ in runs}),
                "keys": sorted({key for _, key in runs}),
                "since": earliest.replace(tzinfo=None) - RUN_MEMORY,
            },
            max_query_size=str(MAX_QUERY_BYTES),
        )
        return runs & {(str(app), int(key)) for app, key in rows}

    def load_segment(self, path: Path, segment: str) -> int | None:
        self._check_open()
        with self._lock:
            return self._load_segment(path, segment)

    def _load_segment(self, path: Path, segment: str) -> int | None:
        begun = self._begun(segment)
        if begun is None:
            return None
        staging = "incoming_" + re.sub(r"[^A-Za-z0-9_]", "_", segment)[:180]
        removed = sorted(self.removed_apps)  # apps known removed; an app merely unknown here is kept
        params: dict[str, Any] = {"segment": segment, "removed": removed}
        ordered = {"max_threads": "1"}  # rows numbered in file order, the same in both reads
        # The same numbered rows in every read below: no filter is added around it that the engine
        # could push below the numbering.
        kept = "NOT has($removed, app)" if removed else "1"  # an empty array literal has no element type
        numbered = f"(SELECT *, rowNumberInAllBlocks() AS line FROM {staging}) WHERE {kept}"
        self._run(f"DROP TABLE IF EXISTS {staging}")
        self._run(f"CREATE TABLE {staging} ({_STAGING_COLUMNS_SQL}) ENGINE = Log")
        try:
            try:
                self._transport.run(
                    f"INSERT INTO {staging} FORMAT JSONEachRow",
                    _chunks(path),
                    {"date_time_input_format": "best_effort"},
                )
            except ClickHouseError as exc:
                if exc.refused_data:
                    raise SegmentRefused(f"segment {segment} cannot be stored: {exc}") from None
                raise StoreUnavailable(f"loading segment {segment} failed: {exc}") from exc
            runs = [
                (app, session, first, earliest)
                for app, session, first, earliest in self._rows(
                    f"SELECT app, {key_sql('session')} AS session_key, min(line), min(time) FROM {numbered}"
                    " GROUP BY app, session_key",
                    params,
                    **ordered,
                )
                if session is not None
            ]
            stored = self._stored_runs(
                {(app, session) for app, session, _, _ in runs}, min((run[3] for run in runs), default=None)
            )
            starts = [first for app, session, first, _ in runs if (app, session) not in stored]
            columns = ", ".join(EVENT_COLUMNS)
            flagged = "has($starts, line)" if starts else "0"
            self._begin(segment, begun)
            self._run(
                f"INSERT INTO events ({columns}, install_key, session_key, run_start, segment)"
                f" SELECT {columns}, {key_sql('install')}, {key_sql('session')}, {flagged}, $segment"
                f" FROM {numbered}",
                {**params, "starts": starts},
                max_query_size=str(MAX_QUERY_BYTES),
                **ordered,
                **self._named(segment),
            )
            events = int(self._rows(f"SELECT count(*) FROM {numbered}", params)[0][0])
            self._record_segment(segment, events)
        finally:
            self._run(f"DROP TABLE IF EXISTS {staging}")
        return events

    def _begun(self, segment: str) -> bool | None:
        """Whether a load of a segment (or a migration batch) began before: None when it is recorded
        as loaded. A load that began may have left rows, in part (a crash or a timed-out request
        between the insert and the record; an insert is one part per month, and one insert per
        shard): they go, everywhere, and it loads again whole. Only then is `events` searched for
        the id: a first load reads `loaded_segments` by its key and never scans `events`, which
        grows with every load (a migration would turn quadratic)."""
        attempt = ATTEMPT_PREFIX + segment
        ids = {
            row[0]
            for row in self._rows(
                "SELECT id FROM loaded_segments WHERE id IN ($segment, $attempt)",
                {"segment": segment, "attempt": attempt},
            )
        }
        if segment in ids:
            return None
        if attempt in ids:
            # The earlier attempt's copy may still run (its request timed out, not the query):
            # its rows would land after the delete below. It goes on later, once that copy ended.
            if self._query_ids and self._rows(
                "SELECT 1 FROM system.processes WHERE query_id = $id", {"id": load_query_id(segment)}
            ):
                raise StoreUnavailable(f"an earlier load of {segment} is still running on the server")
            self._delete_events("segment = $segment", {"segment": segment})
        return attempt in ids

    def _named(self, segment: str) -> dict[str, str]:
        """The copy of a segment's rows runs under a known query id (an HTTP parameter): the
        server refuses a second copy while the first runs, and `_begun` can ask about it."""
        return {"query_id": load_query_id(segment)} if self._query_ids else {}

    def _begin(self, segment: str, begun: bool) -> None:
        """Record that a load begins, just before its rows go into `events` (see `_begun`)."""
        if not begun:
            self._run(
                "INSERT INTO loaded_segments VALUES ($attempt, $now, 0)",
                {"attempt": ATTEMPT_PREFIX + segment, "now": _utc_now()},
            )

    def _record_segment(self, segment: str, events: int | None = None) -> None:
        if events is None:
            events = int(self._rows("SELECT count(*) FROM events WHERE segment = $segment", {"segment": segment})[0][0])
        self._run(
            "INSERT INTO loaded_segments VALUES ($segment, $now, $events)",
            {"segment": segment, "now": _utc_now(), "events": events},
        )

    def _delete_events(self, condition: str, params: Mapping[str, Any]) -> int:
        """Delete the events matching `condition` (a mutation); how many matched, once it is done."""
        matched = int(self._rows(f"SELECT count(*) FROM events WHERE {condition}", params)[0][0])
        if matched:
            layout = self.layout
            self._run(f"ALTER TABLE {layout.local('events')}{layout.on_cluster} DELETE WHERE {condition}", params)
            # A server's mutations are its own: on a cluster, done is when no shard has such a row.
            pending = (
                f"SELECT count(*) FROM events WHERE {condition} HAVING count(*) > 0"  # 18.16 over Distributed
                if layout.cluster  # fails "SELECT 1 ... WHERE" (no column for the condition)
                else "SELECT 1 FROM system.mutations WHERE database = currentDatabase() AND table = 'events'"
                " AND is_done = 0 LIMIT 1"
            )
            deadline = time.monotonic() + MUTATION_TIMEOUT_S
            while self._rows(pending, params):
                if time.monotonic() > deadline:
                    raise StoreUnavailable(f"the delete did not finish within {MUTATION_TIMEOUT_S:.0f} s")
                time.sleep(MUTATION_POLL_S)
        return matched

    def delete_install(self, app: str, install: str) -> int:
        self._check_open()
        with self._lock:
            return self._delete_events("app = $app AND install = $install", {"app": app, "install": install})

    def expire_events(self, before: dt.datetime) -> int:
        """Months wholly before the cut go as whole partitions (`DROP PARTITION`: instant, no
        rewrite); the rest of the cut month by a delete mutation, which rewrites that month only.
        On a cluster both run on every shard's local table (ON CLUSTER); the months are found
        through the Distributed table, since a node's own parts are only its shard's."""
        self._check_open()
        before = before.replace(tzinfo=None)
        month_start = dt.datetime(before.year, before.month, 1)
        layout = self.layout
        with self._lock:
            dropped = 0
            for month, rows in self._rows(
                "SELECT toYYYYMM(time) AS month, count(*) FROM events WHERE time < $start GROUP BY month",
                {"start": month_start},
            ):
                self._run(f"ALTER TABLE {layout.local('events')}{layout.on_cluster} DROP PARTITION {int(month)}")
                dropped += int(rows)
            return dropped + self._delete_events("time < $before", {"before": before})

    def expire_by_itself(self, days: int) -> bool:
        """Make the table's TTL say `days` (0: none) on a server that has TTLs (TTL_SERVER and
        newer; 18.16 has none). A row goes at a merge once its UTC day is more than `days` days
        past, as `expire_events` at that day's cut would delete it. The TTL is the table's, so
        the collectors of one store must agree on `retention_days` (the last one started wins).

        Altered only when it differs, and never materialised over the existing parts (that
        rewrites them all): the hourly `expire_events` deletes what is already there.
        """
        if _version_tuple(self.server_version) < TTL_SERVER:
            return False
        self._check_open()
        layout = self.layout
        wanted = f"TTL toStartOfDay(time) + toIntervalDay({int(days) + 1})" if days > 0 else ""
        table = layout.local("events").rpartition(".")[2]
        ((engine,),) = self._rows(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = $table",
            {"table": table},
        )
        present = " TTL " in f" {engine} "
        if wanted and wanted not in str(engine):
            change = f"MODIFY {wanted}"
        elif not wanted and present:
            change = "REMOVE TTL"
        else:
            return bool(wanted)
        with self._lock:
            self._run(
                f"ALTER TABLE {layout.local('events')}{layout.on_cluster} {change}", materialize_ttl_after_modify="0"
            )
        return bool(wanted)

    def import_app(self, name: str, created: dt.datetime) -> bool:
        """Register an app with its creation time (a migration keeps it); True if it was new."""
        self._check_open()
        with self._lock:
            return self._add_app(name, created)

    def loaded_batches(self, prefix: str) -> set[str]:
        """The ids of the segments and migration batches recorded so far that start with `prefix`."""
        rows = self._rows(
            "SELECT id FROM loaded_segments WHERE substring(id, 1, length($prefix)) = $prefix", {"prefix": prefix}
        )
        return {str(row[0]) for row in rows}

    def import_batch(self, path: Path, batch: str) -> int | None:
        """Store a migration batch (JSON lines of every event column, the derived ones included)
        exactly once, as `load_segment` does a segment: its id goes with its rows and into
        `loaded_segments` after them, and a batch already recorded is skipped (None).

        Rows of the batch that are present but not recorded are what a run killed midway left
        (one insert is atomic only up to a block of a million rows): they are deleted and the
        batch is inserted again. Returns how many events were stored.
        """
        self._check_open()
        with self._lock:
            begun = self._begun(batch)
            if begun is None:
                return None
            self._begin(batch, begun)
            columns = ", ".join((*EVENT_COLUMNS, "install_key", "session_key", "run_start", "segment"))
            try:
                self._transport.run(
                    f"INSERT INTO events ({columns}) FORMAT JSONEachRow", _chunks(path), self._named(batch)
                )
            except ClickHouseError as exc:
                raise StoreUnavailable(f"migrating batch {batch} failed: {exc}") from exc
            events = _lines(path)  # one event a line, all stored or none (counting rows would scan `events`)
            self._record_segment(batch, events)
            return events

    def delete_batch(self, batch: str) -> int:
        """Delete a recorded migration batch (its day is copied again): its rows, then its
        record (so a crash between leaves a record to delete again); how many rows went."""
        self._check_open()
        layout = self.layout
        with self._lock:
            deleted = self._delete_events("segment = $segment", {"segment": batch})
            found = {"segment": batch}
            self._run(
                f"ALTER TABLE {layout.local('loaded_segments')}{layout.on_cluster} DELETE WHERE id = $segment", found
            )
            # Done before the day's new batch is recorded: a later run that still saw this record
            # (and the same rows again) would take the day for copied.
            deadline = time.monotonic() + MUTATION_TIMEOUT_S
            while self._rows("SELECT 1 FROM loaded_segments WHERE id = $segment LIMIT 1", found):
                if time.monotonic() > deadline:
                    raise StoreUnavailable(f"the record of {batch} was not deleted within {MUTATION_TIMEOUT_S:.0f} s")
                time.sleep(MUTATION_POLL_S)
            return deleted

    def add_app(self, name: str) -> bool:
        self._check_open()
        with self._lock:
            return self._add_app(name, _utc_now())

    def _add_app(self, name: str, created: dt.datetime) -> bool:
        if name in self.registry.apps:
            return False
        version = self._next_version()
        self._run(
            "INSERT INTO apps (name, created, updated, deleted, timezone) VALUES ($name, $created, $version, 0, 'UTC')",
            {"name": name, "created": created, "version": version},
        )
        self._note(("app", name), version, False, "UTC")
        return True

    def remove_app(self, name: str) -> int:
        self._check_open()
        with self._lock:
            if name not in self.registry.apps:
                self._merge(self._read_registry())  # registered through another collector a moment ago?
                if name not in self.registry.apps:
                    return 0
            # A removal of the app noted first, so the collector stops accepting its events before
            # they are deleted; the rows it replaced are put back if the delete fails.
            entries: list[Entry] = [("app", name), ("schema", name)]
            entries += [("key", kind, key) for (kind, key), (app, _) in self.registry.keys.items() if app == name]
            # Keys registered elsewhere that this store has not seen yet go too.
            entries += [
                ("key", str(kind), str(key))
                for kind, key in self._rows(
                    "SELECT kind, key FROM app_keys FINAL WHERE app = $name AND deleted = 0", {"name": name}
                )
            ]
            entries = list(dict.fromkeys(entries))
            version = self._next_version()
            before = {entry: self._known[entry] for entry in entries if entry in self._known}
            for entry in entries:
                self._known[entry] = Version(version, True, before[entry].value if entry in before else "")
            self.registry = _registry_of(self._known)
            try:
                deleted = self._delete_events("app = $app", {"app": name})
            except BaseException:  # put back: the app stays whole, and its removal can be retried
                for entry in entries:
                    if entry in before:
                        self._known[entry] = before[entry]
                    else:
                        del self._known[entry]
                self.registry = _registry_of(self._known)
                raise
            row = {"name": name, "version": version, "now": _utc_now()}
            for entry in entries:
                if entry[0] == "key":
                    self._run(
                        "INSERT INTO app_keys VALUES ($name, $kind, $key, '', $version, 1)",
                        {**row, "kind": entry[1], "key": entry[2]},
                    )
            self._run("INSERT INTO app_schemas VALUES ($name, '', $version, 1)", row)
            self._run(
                "INSERT INTO apps (name, created, updated, deleted, timezone) VALUES ($name, $now, $version, 1, 'UTC')",
                row,
            )
            return deleted

    def add_key(self, app: str, kind: str, key: str, secret_hash: str = "") -> bool:
        self._check_open()
        with self._lock:
            owner = self._rows(
                "SELECT app FROM app_keys FINAL WHERE kind = $kind AND key = $key AND deleted = 0",
                {"kind": kind, "key": key},
            )
            if owner and owner[0][0] != app:
                raise UsageError(f"{key} is already registered to the app {owner[0][0]!r}")
            version = self._next_version()
            self._run(
                "INSERT INTO app_keys VALUES ($app, $kind, $key, $secret, $version, 0)",
                {"app": app, "kind": kind, "key": key, "secret": secret_hash, "version": version},
            )
            self._note(("key", kind, key), version, False, (app, secret_hash))
            return not owner

    def set_timezone(self, app: str, timezone: str) -> None:
        self._check_open()
        with self._lock:
            created = self._rows("SELECT created FROM apps FINAL WHERE name = $app AND deleted = 0", {"app": app})
            if not created:
                return
            version = self._next_version()
            self._run(
                "INSERT INTO apps (name, created, updated, deleted, timezone)"
                " VALUES ($app, $created, $version, 0, $zone)",
                {"app": app, "created": created[0][0], "version": version, "zone": timezone},
            )
            self._note(("app", app), version, False, timezone)

    def set_schema(self, app: str, schema: str) -> None:
        self._check_open()
        with self._lock:
            version = self._next_version()
            self._run(
                "INSERT INTO app_schemas VALUES ($app, $schema, $version, 0)",
                {"app": app, "schema": schema, "version": version},
            )
            self._note(("schema", app), version, False, schema)

    def backup(self, destination: Path) -> None:
        raise UsageError(
            "a ClickHouse store is backed up with ClickHouse's own tools (ALTER TABLE ... FREEZE, or"
            " clickhouse-backup); footfall backup copies a DuckDB store"
        )

    # -- reads --------------------------------------------------------------------

    def list_apps(self) -> list[App]:
        if self.barrier is not None:
            self.barrier()
        keys: dict[str, list[tuple[str, str]]] = {}
        for (kind, key), (app, _) in sorted(self.registry.keys.items()):
            keys.setdefault(app, []).append((kind, key))
        return [
            App(name, created, tuple(keys.get(name, ())), name in self.registry.schemas, self.timezone(name))
            for name, created in self._rows("SELECT name, created FROM apps FINAL WHERE deleted = 0 ORDER BY name")
        ]

    def query_now(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        self._check_open()
        try:
            return self._result(sql, params)
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"query failed: {exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_refresh.set()
        # A reload under way finishes before the connections close (its request would fail);
        # one stuck longer is left to fail, and its loop logs it and ends.
        self._refresher.join(CLOSE_WAIT_S)
        self._writer.shutdown(wait=True)
        self._transport.close()
