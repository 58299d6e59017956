"""A real PostgreSQL server for tests: Debian's (`postgresql`, 15) on loopback.

`postgres_server` (session scope, imported into tests/conftest.py) runs `initdb` into a
temporary folder and `pg_ctl start` on a free TCP port of 127.0.0.1, with its Unix socket in
that folder too (never /var/run/postgresql), and stops it when the session ends. Each test
takes a fresh database from `PostgresServer.database()`. PostgreSQL refuses to run as root:
as root, the server runs as the `postgres` system user, in a folder it owns.

It skips with the reason when the binaries are missing, and fails instead under CI=true
(`make system-deps` installs them with apt-get).
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clickhouse_process import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"
START_TIMEOUT_S = 60  # for pg_ctl stop; pg_ctl start -w waits its own 60 s. Measured: about 1 s here
SUPERUSER = "footfall"


def bin_dir() -> Path | None:
    """The newest installed server's bin folder, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob(BIN_GLOB), key=lambda path: int(Path(path).parent.name.split(".")[0]))
    for folder in reversed(found):
        if os.access(os.path.join(folder, "pg_ctl"), os.X_OK):
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def require_bin_dir() -> Path:
    folder = bin_dir()
    if folder is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required under CI: make system-deps installs it with apt-get")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    return folder


@dataclasses.dataclass
class PostgresServer:
    folder: Path
    port: int
    bin: Path
    run_as: dict[str, Any]
    _databases: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database's URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._databases)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [str(self.bin / "pg_ctl"), "stop", "-D", str(self.folder / "data"), "-m", "fast", "-w"],
            capture_output=True,
            check=False,
            timeout=START_TIMEOUT_S,
            **self.run_as,
        )


def start(folder: Path) -> PostgresServer:
    binaries = require_bin_dir()
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL will not run as root, and there is no postgres user to run it as")
        run_as = {"user": account.pw_uid, "group": account.pw_gid}
        os.chown(folder, account.pw_uid, account.pw_gid)
    port = free_port()
    data = folder / "data"
    initdb = subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"],
        capture_output=True,
        check=False,
        **run_as,
    )
    if initdb.returncode:
        pytest.fail(f"initdb failed: {initdb.stderr.decode(errors='replace')[-2000:]}")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} -c fsync=off"
    started = subprocess.run(
        [str(binaries / "pg_ctl"), "start", "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o", options],
        capture_output=True,
        check=False,
        **run_as,
    )
    server = PostgresServer(folder, port, binaries, run_as)
    if started.returncode:
        log = (folder / "server.log").read_text(errors="replace") if (folder / "server.log").exists() else ""
        server.stop()
        pytest.fail(f"PostgreSQL did not start: {started.stderr.decode(errors='replace')}\n{log[-2000:]}")
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: its folders are private to this user, and the server may run as another.
    folder = Path(tempfile.mkdtemp(prefix="footfall-postgres-"))
    try:
        server = start(folder)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
