"""A real ClickHouse server for tests: Debian's `clickhouse-server` (18.16) on loopback.

`clickhouse_server` (session scope, imported into tests/conftest.py) starts one server
with its own temporary data directory and config files, on free HTTP and TCP ports, and
stops it when the session ends. It never reads /etc/clickhouse-server or writes /var: every
path is passed in the config it writes. Each test takes a fresh database from
`ClickHouseServer.database()`, so tests never see each other's tables.

It skips with the reason when the binary is missing, and fails instead under CI=true
(`make system-deps` installs it with apt-get).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

# The server's config and process: shared with benchmarks/bench_stores.py.
from footfall.server.stores.base import EventRecord
from tests.clickhouse_process import binary, launch, stop, wait_ready, write_config

NOW = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)  # the ClickHouse tests' "now"


def command_event(**fields: Any) -> EventRecord:
    """One stored `command` event of app "alpha" five minutes ago (whole seconds, as a DateTime
    holds them), with any field changed: the ClickHouse tests' common record."""
    record = EventRecord(
        time=NOW - dt.timedelta(minutes=5),
        received=NOW,
        app="alpha",
        app_version="1.0",
        name="command",
        install="a" * 64,
        session="b" * 64,
        os="Linux",
        os_version="6.1",
        arch="x86_64",
        runtime="cpython",
        runtime_version="3.12",
        ci="",
        container="",
        country="DE",
        props='{"command":"build"}',
        source="native",
    )
    return dataclasses.replace(record, **fields)


def require_binary() -> list[str]:
    command = binary()
    if command is None:
        if os.environ.get("CI") == "true":
            pytest.fail("clickhouse-server is required under CI: make system-deps installs it with apt-get")
        pytest.skip("clickhouse-server is not installed (apt-get install clickhouse-server)")
    return command


@dataclasses.dataclass
class ClickHouseServer:
    folder: Path
    http_port: int
    tcp_port: int
    process: subprocess.Popen[bytes]
    startup_s: float
    _databases: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def execute(self, sql: str) -> str:
        """Run one statement over HTTP (for fixtures; the store has its own client)."""
        request = urllib.request.Request(self.url + "/", data=sql.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            text: str = answer.read().decode()
            return text

    def database(self) -> str:
        """A new, empty database's store URL: clickhouse://127.0.0.1:PORT/NAME."""
        name = f"test_{os.getpid()}_{next(self._databases)}"
        self.execute(f"CREATE DATABASE {name}")
        return f"clickhouse://127.0.0.1:{self.http_port}/{name}"

    def stop(self) -> None:
        stop(self.process)


def start(folder: Path, extra: str = "", tcp_port: int | None = None) -> ClickHouseServer:
    """A server in `folder`; `extra` is more config (a cluster's remote_servers, macros, zookeeper),
    `tcp_port` the native port when the cluster config already names it."""
    command = require_binary()
    http_port, tcp_port = write_config(folder, extra, tcp_port)
    server = ClickHouseServer(folder, http_port, tcp_port, launch(command, folder), 0.0)
    try:
        server.startup_s = wait_ready(server.process, folder, http_port)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    return server


_running: list[ClickHouseServer] = []  # the session's server, once the fixture started it


def running() -> ClickHouseServer:
    """The session's server, for store factories that take no fixtures (request `clickhouse_server` first)."""
    assert _running, "request the clickhouse_server fixture first"
    return _running[0]


def store(folder: Path) -> Any:
    """A ClickHouseStore on a new database of the session's server (a contract store factory)."""
    from footfall.server.stores.clickhouse import ClickHouseStore

    return ClickHouseStore(running().database())


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    server = start(tmp_path_factory.mktemp("clickhouse"))
    _running.append(server)
    try:
        yield server
    finally:
        _running.clear()
        server.stop()


class ChdbTransport:
    """The current ClickHouse engine in-process (chdb, PyPI), behind the store's `Transport`: the
    same SQL as a server gets, to show that it runs on a current engine too."""

    def __init__(self, folder: Path, database: str = "footfall") -> None:
        from chdb import session

        self._session = session.Session(str(folder))
        self._session.query(f"CREATE DATABASE IF NOT EXISTS {database}")
        self._session.query(f"USE {database}")

    def run(self, sql: str, body: Iterable[bytes] | None = None, settings: Mapping[str, str] | None = None) -> str:
        from footfall.server.stores.clickhouse import error_from, literal

        try:
            for name, value in (settings or {}).items():  # session settings: harmless for later statements
                if name == "readonly":
                    continue  # it would stay for the session's later writes (a server sets it per request)
                self._session.query(f"SET {name} = {value if value.isdigit() else literal(value)}")
            text = sql if body is None else sql + "\n" + b"".join(body).decode()
            return str(self._session.query(text))
        except Exception as exc:  # chdb raises its own error type, with the server's "Code: N" text
            if "Code:" not in str(exc):
                raise
            raise error_from(str(exc)) from None

    def close(self) -> None:
        self._session.close()
