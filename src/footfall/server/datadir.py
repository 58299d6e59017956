"""The data directory: everything one Footfall instance keeps, in one folder.

    DIR/                  mode 0700; each file below 0600, each folder below 0700
    DIR/footfall.duckdb   the embedded store (events and apps), and its .wal
    DIR/accounts.sqlite   users, tokens and sessions, and its -wal and -shm
    DIR/secrets.json      the install-hash key and the local admin token; the same file on
                          every collector of a shared store (docs/deployment.md)
    DIR/server.json       while `footfall serve` runs: its pid and URL
    DIR/log/              the ingest log: acknowledged events, fsynced, waiting to be loaded
    DIR/log/quarantine/   lines the store would not take, kept for an operator
    DIR/run/              with --workers N: the owner's Unix socket (owner.sock) and the workers' locks
    DIR/public/<app>/     the app's daily public releases (when it is public)

Nothing in it is for other users of the machine: the store holds the keyed hashes and the
account database holds password hashes and session tokens. `create` makes the folder private,
tightens what an older version left readable, and sets the process umask to 0077, so that the
files the databases create on their own later (DuckDB's .wal, SQLite's -wal and -shm, the log)
are private from their first byte. Several instances live side by side in different folders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from footfall.server.errors import UsageError

DATABASE_FILE = "footfall.duckdb"
MIGRATION_FILE = "migration.json"  # what `footfall migrate` recorded (operator/migrate.py)
SECRETS_FILE = "secrets.json"
SERVER_FILE = "server.json"
ACCOUNTS_FILE = "accounts.sqlite"
FINGERPRINT_TEXT = b"footfall install key fingerprint v1"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PRIVATE_UMASK = 0o077  # no group or other bits on anything this process creates


# What Footfall keeps in the folder, by name: each database with its journal, WAL and
# shared-memory files, the secrets, the server file (and its temporary), and the ingest log.
OWN_FILE_PREFIXES = (DATABASE_FILE, ACCOUNTS_FILE, SECRETS_FILE, MIGRATION_FILE, "server.")
OWN_FOLDERS = frozenset({"log", "spool", "run"})  # spool: the log's predecessor; run: --workers' socket, locks


def _chmod(path: str, mode: int) -> None:
    try:
        if not os.path.islink(path):
            os.chmod(path, mode)
    except OSError:
        pass  # deleted meanwhile (a loaded segment, a checkpointed .wal)


@dataclasses.dataclass(frozen=True)
class ServerSecrets:
    install_key: bytes  # keys the hash of install and session ids
    admin_token: str  # lets the local CLI and the dashboard's first login in

    @property
    def fingerprint(self) -> str:
        """What a shared store remembers of the install key: equal keys give equal fingerprints,
        and the key cannot be recovered from it (an HMAC of a fixed text under the key)."""
        return hmac.new(self.install_key, FINGERPRINT_TEXT, hashlib.sha256).hexdigest()


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def database(self) -> Path:
        return self.path / DATABASE_FILE

    @property
    def secrets_file(self) -> Path:
        return self.path / SECRETS_FILE

    @property
    def log(self) -> Path:
        return self.path / "log"

    @property
    def run(self) -> Path:
        """The owner's Unix socket and the workers' locks (`footfall serve --workers N`)."""
        return self.path / "run"

    @property
    def server_file(self) -> Path:
        return self.path / SERVER_FILE

    def create(self) -> None:
        """Create the folder (mode 0700) if needed, make what is in it private, and set the umask.

        Every command that writes to the folder (serve, demo, app, user, token) starts here.
        """
        os.umask(PRIVATE_UMASK)  # process-wide on purpose: this process writes into the folder
        self._make()

    def _make(self) -> None:
        try:
            self.path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the data directory {self.path}: {exc.strerror}") from None
        self.make_private()

    def make_private(self) -> None:
        """Chmod the folder 0700, and Footfall's own files in it 0600 (its folders 0700).

        Only what Footfall keeps is touched (by name), never anything else a user keeps
        in a folder they chose as `--data`; links are left alone.
        """
        try:
            os.chmod(self.path, PRIVATE_DIR_MODE)
            names = os.listdir(self.path)
        except OSError as exc:
            raise UsageError(f"cannot make the data directory {self.path} private: {exc.strerror}") from None
        for name in names:
            path = os.path.join(self.path, name)
            if name in OWN_FOLDERS:
                _chmod(path, PRIVATE_DIR_MODE)
                for root, folders, files in os.walk(path):
                    for folder in folders:
                        _chmod(os.path.join(root, folder), PRIVATE_DIR_MODE)
                    for file in files:
                        _chmod(os.path.join(root, file), PRIVATE_FILE_MODE)
            elif name.startswith(OWN_FILE_PREFIXES):
                _chmod(path, PRIVATE_FILE_MODE)

    def secrets(self) -> ServerSecrets:
        """Load the secrets, creating them (mode 0600) on first use."""
        path = self.path / SECRETS_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return ServerSecrets(bytes.fromhex(raw["install_key"]), raw["admin_token"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is unreadable or damaged: {exc}") from None
        self._make()  # not `create`: an embedding process (`create_app`) keeps its own umask
        fresh = ServerSecrets(secrets.token_bytes(32), secrets.token_urlsafe(32))
        data = {"install_key": fresh.install_key.hex(), "admin_token": fresh.admin_token}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        return fresh

    def rotate_admin_token(self) -> str:
        """Replace the local admin token (atomically, mode 0600); the old one stops working."""
        current = self.secrets()
        token = secrets.token_urlsafe(32)
        data = {"install_key": current.install_key.hex(), "admin_token": token}
        path = self.path / SECRETS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return token

    @property
    def migration_file(self) -> Path:
        return self.path / MIGRATION_FILE

    def migration(self) -> dict[str, Any]:
        """What `footfall migrate` recorded here: `source` (this directory's id in batch ids) and,
        once a migration finished, `target` (the store URL, without its password); {} if none."""
        try:
            found = json.loads(self.migration_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.migration_file} is unreadable or damaged: {exc}") from None
        if not isinstance(found, dict):
            raise UsageError(f"{self.migration_file} is damaged: not an object")
        return found

    def record_migration(self, **fields: str) -> None:
        """Add `fields` to the migration record (atomically, mode 0600)."""
        record = {**self.migration(), **fields}
        tmp = self.migration_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.replace(tmp, self.migration_file)

    def write_server_file(self, pid: int, url: str, public_url: str = "") -> None:
        """`url` is where the server listens (for the CLI); `public_url` its --public-url, for printed links."""
        tmp = self.server_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"pid": pid, "url": url, "public_url": public_url}, handle)
        os.replace(tmp, self.server_file)

    def read_server_file(self) -> dict[str, Any] | None:
        try:
            info = json.loads(self.server_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(info, dict) and isinstance(info.get("url"), str):
            return info
        return None

    def remove_server_file(self, pid: int) -> None:
        info = self.read_server_file()
        if info and info.get("pid") == pid:
            self.server_file.unlink(missing_ok=True)
