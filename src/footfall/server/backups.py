"""Online backups of a data directory, and restoring one into an empty directory.

A backup is a folder holding what a data directory needs to be served again:

    DEST/footfall.duckdb       a consistent copy of the store, made by the store's writer (and
                               its .wal, in the rare case a checkpoint left one)
    DEST/accounts.sqlite       users, tokens, sessions and the audit log (SQLite's online backup)
    DEST/secrets.json          the install-hash key and the local admin token
    DEST/public/<app>/...      the apps' daily public releases
    DEST/log/...               acknowledged events not yet loaded into the store, and the quarantine
    DEST/footfall-backup.json  what this is: the format, the Footfall version, the time

The server makes it while serving (`POST /api/v1/backup`, the local admin token only), or the
CLI makes it directly when no server runs; either way the process that owns the store copies
it. Everything is private (folders 0700, files 0600): the copy holds the same secrets as the
data directory. Kept out: server.json (names a process that is not running) and anything
else an operator keeps in the folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from footfall import __version__
from footfall.server.datadir import (
    ACCOUNTS_FILE,
    DATABASE_FILE,
    MIGRATION_FILE,
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    SECRETS_FILE,
)
from footfall.server.errors import FootfallError, UsageError
from footfall.server.stores.base import EventStore

MANIFEST_FILE = "footfall-backup.json"
BACKUP_FORMAT = 1
COPIED_FOLDERS = ("public", "log")  # files in them are written whole (renamed into place), or sealed and never changed


class BackupFailed(FootfallError):
    """The disk failed the copy (full, unreadable, gone): a 500 over HTTP, exit 1 in the CLI."""

    code = "backup_failed"


def _new_folder(destination: Path) -> None:
    if not destination.is_absolute():
        raise UsageError(f"the backup destination must be an absolute path, not {str(destination)!r}")
    if not destination.parent.is_dir():
        raise UsageError(f"{destination.parent} is not a folder")
    try:
        destination.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        raise UsageError(f"{destination} already exists: a backup goes into a new folder") from None
    except OSError as exc:
        raise UsageError(f"cannot create {destination}: {exc.strerror}") from None
    os.chmod(destination, PRIVATE_DIR_MODE)


def _copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    os.chmod(target, PRIVATE_FILE_MODE)


def _copy_tree(source: Path, target: Path) -> int:
    """Copy the regular files under `source` (links are skipped); returns how many."""
    copied = 0
    for root, _folders, files in os.walk(source):
        for name in sorted(files):
            path = Path(root, name)
            if path.is_symlink() or not path.is_file() or name.endswith(".tmp"):
                continue  # a temporary is a write still under way: its finished file is what counts
            try:
                _copy_file(path, target / path.relative_to(source))
            except FileNotFoundError:
                continue  # loaded (log) or replaced (public release) meanwhile
            copied += 1
    return copied


def backup_accounts(source: Path, target: Path) -> None:
    """Copy the accounts database with SQLite's online backup API: one consistent snapshot,
    however many connections are writing to it meanwhile."""
    source_db = sqlite3.connect(source, timeout=10)
    try:
        target_db = sqlite3.connect(target)
        try:
            source_db.backup(target_db)
        finally:
            target_db.close()
    finally:
        source_db.close()
    os.chmod(target, PRIVATE_FILE_MODE)


def write_backup(
    store: EventStore,
    data: Path,
    destination: Path,
    log_paused: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
) -> dict[str, Any]:
    """Back up the data directory `data`, whose store `store` is open in this process, into the
    new folder `destination`. Returns the manifest. On failure nothing that looks whole is left.

    The caller passes its ingest log's `paused`: it seals the open segment, then holds loads
    while the store and the log are copied, so every event acknowledged before the backup
    began is in exactly one of the two copies (a load between them could put it in both, or
    in neither).
    """
    inside = destination.resolve(), data.resolve()
    if inside[0].is_relative_to(inside[1]) or inside[1].is_relative_to(inside[0]):
        # A copy of the data directory inside itself would copy itself, level after level.
        raise UsageError(f"the backup destination must be outside the data directory {data}")
    _new_folder(destination)
    started = dt.datetime.now(dt.timezone.utc)
    try:
        with log_paused():
            store.backup(destination / DATABASE_FILE)
            logged = _copy_tree(data / "log", destination / "log")
        for made in destination.iterdir():  # the store's copy (and any journal beside it), whatever the umask
            if made.is_file():
                os.chmod(made, PRIVATE_FILE_MODE)
        if (data / ACCOUNTS_FILE).exists():
            backup_accounts(data / ACCOUNTS_FILE, destination / ACCOUNTS_FILE)
        if (data / SECRETS_FILE).exists():  # missing only where no server ever ran, so nothing was hashed yet
            _copy_file(data / SECRETS_FILE, destination / SECRETS_FILE)
        if (data / MIGRATION_FILE).exists():  # its source id: a later migrate must not copy the days twice
            _copy_file(data / MIGRATION_FILE, destination / MIGRATION_FILE)
        files = {"log": logged, "public": _copy_tree(data / "public", destination / "public")}
        manifest = {
            "format": BACKUP_FORMAT,
            "footfall_version": __version__,
            "started": started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "files": files,
        }
        # Written last: a folder without it is an unfinished backup, and restore refuses it.
        fd = os.open(destination / MANIFEST_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        shutil.rmtree(destination, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BackupFailed(f"the backup failed, and {destination} was removed: {exc}") from None
        raise
    return {"destination": str(destination), **manifest}


def read_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((source / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{source} is not a finished Footfall backup: it has no {MANIFEST_FILE}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{source / MANIFEST_FILE} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise UsageError(f"{source} is a backup in a format this version does not know")
    if not (source / DATABASE_FILE).is_file():
        raise UsageError(f"{source} is incomplete: it has no {DATABASE_FILE}")
    return manifest


def restore_files(source: Path, data: Path) -> dict[str, Any]:
    """Copy the backup `source` into the data directory `data`, which must be missing or empty.

    Only the files; the caller opens the store and the accounts afterwards, which migrates them
    when the backup comes from an older version.
    """
    manifest = read_manifest(source)
    if data.exists():
        if not data.is_dir():
            raise UsageError(f"{data} is not a folder")
        if any(data.iterdir()):
            raise UsageError(f"{data} is not empty: restore into a new or empty data directory")
    data.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(data, PRIVATE_DIR_MODE)
    try:
        for name in (DATABASE_FILE, DATABASE_FILE + ".wal", ACCOUNTS_FILE, SECRETS_FILE, MIGRATION_FILE):
            if (source / name).is_file():
                _copy_file(source / name, data / name)
        for folder in COPIED_FOLDERS:
            _copy_tree(source / folder, data / folder)
    except BaseException as exc:
        for entry in data.iterdir():  # back to empty: the folder itself may be a mount point
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise BackupFailed(f"the restore failed, and {data} was emptied again: {exc}") from None
        raise
    return manifest
