"""`footfall backup DEST` and `footfall restore SRC --data DIR`.

A running server owns the store (DuckDB lets one process open it), so a backup while serving
is made by that server: the CLI asks it with the local admin token, and the server's writer
copies the store between two commits. With no server, the CLI opens the store and does the
same itself. See footfall.server.backups for what a backup holds.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from footfall.server.backups import restore_files, write_backup
from footfall.server.datadir import DataDir
from footfall.server.errors import FootfallError, StoreUnavailable, UsageError
from footfall.server.operator.control import find_server

BACKUP_ROUTE = "/api/v1/backup"
# A copy of a large store takes minutes, not the seconds other API calls are allowed.
BACKUP_TIMEOUT_S = 6 * 3600


def ask_server_to_back_up(url: str, token: str, destination: Path) -> dict[str, Any]:
    request = urllib.request.Request(
        url.rstrip("/") + BACKUP_ROUTE,
        data=json.dumps({"destination": str(destination)}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=BACKUP_TIMEOUT_S) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                message = str(json.loads(exc.read())["error"]["message"])
            except (ValueError, KeyError, TypeError):
                message = f"the server answered {exc.code}"
        raise (UsageError if exc.code in (400, 403) else FootfallError)(message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise StoreUnavailable(f"the server at {url} does not answer: {exc}") from None


def add_backup_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    backup = commands.add_parser(
        "backup",
        parents=[common],
        help="copy the data directory, online",
        description="Copy the data directory into the new folder DEST, while the server runs (the running "
        "server makes the copy: DEST must be writable by its user) or when it does not. Events "
        "acknowledged before the backup starts are in it; those acknowledged while it runs may or may not be.",
    )
    backup.add_argument("destination", type=Path, metavar="DEST", help="a new folder for the backup")
    restore = commands.add_parser(
        "restore",
        parents=[common],
        help="restore a backup into an empty data directory",
        description="Copy the backup SRC into --data, which must be new or empty; the store and the accounts "
        "are then opened once, which migrates them if the backup comes from an older version.",
    )
    restore.add_argument("source", type=Path, metavar="SRC", help="a folder `footfall backup` wrote")


def backup_command(datadir: DataDir, destination: Path) -> dict[str, Any]:
    target = destination.expanduser().absolute()
    if target.exists():
        raise UsageError(f"{target} already exists: a backup goes into a new folder")
    url = find_server(datadir)
    if url is not None:
        return ask_server_to_back_up(url, datadir.secrets().admin_token, target)
    if not datadir.database.exists():
        raise UsageError(f"{datadir.path} holds no Footfall data to back up")
    from footfall.server.ingest.log import LEGACY_SPOOL, adopt_legacy_spool
    from footfall.server.stores.duckdb import DuckDBStore

    datadir.create()  # the private umask, for what the copy creates
    adopt_legacy_spool(datadir.path / LEGACY_SPOOL, datadir.log)  # a spool from before the log is in the copy
    store = DuckDBStore(datadir.database)
    try:
        return write_backup(store, datadir.path, target)
    finally:
        store.close()


def restore_command(source: Path, datadir: DataDir) -> dict[str, Any]:
    if find_server(datadir) is not None:
        raise UsageError(f"footfall serve is running on {datadir.path}: restore into a new data directory")
    from footfall.server.auth.accounts import AccountStore
    from footfall.server.stores.duckdb import DuckDBStore

    datadir.create()
    manifest = restore_files(source.expanduser().absolute(), datadir.path)
    # Opened once here: an older backup is migrated now, and a damaged one is reported now, not at serve.
    DuckDBStore(datadir.database).close()
    AccountStore(datadir.path / "accounts.sqlite").close()
    datadir.make_private()
    return manifest
