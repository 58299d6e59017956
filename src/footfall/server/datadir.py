"""The data directory: everything one Footfall instance keeps, in one folder.

    DIR/footfall.duckdb   the embedded store (events and apps)
    DIR/secrets.json      mode 0600: the install-hash key and the local admin token
    DIR/server.json       while `footfall serve` runs: its pid and URL

Several instances live side by side by using different folders.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from pathlib import Path
from typing import Any

from footfall.server.errors import UsageError

DATABASE_FILE = "footfall.duckdb"
SECRETS_FILE = "secrets.json"
SERVER_FILE = "server.json"


@dataclasses.dataclass(frozen=True)
class ServerSecrets:
    install_key: bytes  # keys the hash of install and session ids
    admin_token: str  # lets the local CLI and the dashboard's first login in


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def database(self) -> Path:
        return self.path / DATABASE_FILE

    @property
    def server_file(self) -> Path:
        return self.path / SERVER_FILE

    def create(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the data directory {self.path}: {exc.strerror}") from None

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
        self.create()
        fresh = ServerSecrets(secrets.token_bytes(32), secrets.token_urlsafe(32))
        data = {"install_key": fresh.install_key.hex(), "admin_token": fresh.admin_token}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
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

    def write_server_file(self, pid: int, url: str) -> None:
        tmp = self.server_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": pid, "url": url}), encoding="utf-8")
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
