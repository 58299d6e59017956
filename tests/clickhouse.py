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
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

BINARIES = ("/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse")
STARTUP_TIMEOUT_S = 60.0  # measured: about 0.2 s on this machine; generous for a loaded CI runner
STOP_TIMEOUT_S = 30.0

CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{folder}/server.log</log>
    <errorlog>{folder}/server.err.log</errorlog>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{folder}/data/</path>
  <tmp_path>{folder}/tmp/</tmp_path>
  <user_files_path>{folder}/user_files/</user_files_path>
  <format_schema_path>{folder}/format_schemas/</format_schema_path>
  <users_config>{folder}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <mlock_executable>false</mlock_executable>
{extra}
</yandex>
"""
USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def binary() -> list[str] | None:
    """The command that runs the server, or None when ClickHouse is not installed."""
    for path in BINARIES:
        if os.access(path, os.X_OK):
            return [path] if path.endswith("-server") else [path, "server"]
    found = shutil.which("clickhouse-server")
    return [found] if found else None


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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(folder: Path, extra: str = "", tcp_port: int | None = None) -> ClickHouseServer:
    """A server in `folder`; `extra` is more config (a cluster's remote_servers, macros, zookeeper),
    `tcp_port` the native port when the cluster config already names it."""
    command = require_binary()
    folder.mkdir(parents=True, exist_ok=True)
    http_port, tcp_port = free_port(), tcp_port or free_port()
    (folder / "config.xml").write_text(
        CONFIG.format(folder=folder, http_port=http_port, tcp_port=tcp_port, extra=extra)
    )
    (folder / "users.xml").write_text(USERS)
    started = time.monotonic()
    process = subprocess.Popen(
        [*command, f"--config-file={folder / 'config.xml'}"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = ClickHouseServer(folder, http_port, tcp_port, process, 0.0)
    while time.monotonic() - started < STARTUP_TIMEOUT_S:
        if process.poll() is not None:
            log = (
                (folder / "server.err.log").read_text(errors="replace") if (folder / "server.err.log").exists() else ""
            )
            pytest.fail(f"clickhouse-server exited with {process.returncode}:\n{log[-2000:]}")
        try:
            with urllib.request.urlopen(server.url + "/ping", timeout=1) as answer:
                if answer.read() == b"Ok.\n":
                    server.startup_s = time.monotonic() - started
                    return server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.05)
    server.stop()
    pytest.fail(f"clickhouse-server did not answer within {STARTUP_TIMEOUT_S} s")


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
