"""The per-tool state file: what Footfall remembers on a user's machine, all of it.

The file is `<config dir>/footfall/<app>.json`, where the config dir is
`$XDG_CONFIG_HOME` (default `~/.config`) on Linux and other Unix systems,
`~/Library/Application Support` on macOS and `%APPDATA%` on Windows. It holds:

    {"install_id": "<32 hex digits>",   random; absent in the no-id mode or when off
     "enabled": true | false,           set by `analytics on|off`; absent by default
     "notice_version": 1}               the newest notice this user has been shown

Each tool has its own file, so two tools cannot link their users. Unsent batches
wait in `<config dir>/footfall/<app>.spool/`. When the file cannot be written
(read-only home, full disk), the run sends no id rather than a new one each run.
"""

from __future__ import annotations

import os
import sys

from footfall.patterns import compiled

INSTALL_ID_PATTERN = r"^[0-9a-f]{32}$"


def config_dir(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if sys.platform == "win32" and env.get("APPDATA"):
        base = env["APPDATA"]
    elif sys.platform == "darwin":
        base = os.path.join(os.path.expanduser("~"), "Library", "Application Support")
    elif env.get("XDG_CONFIG_HOME"):
        base = env["XDG_CONFIG_HOME"]
    else:
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "footfall")


def new_install_id() -> str:
    return os.urandom(16).hex()


class ToolState:
    def __init__(self, directory: str, app: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, f"{app}.json")
        self.spool_dir = os.path.join(directory, f"{app}.spool")
        self._data: dict[str, object] | None = None

    def load(self) -> dict[str, object]:
        if self._data is None:
            import json

            try:
                with open(self.path, encoding="utf-8") as handle:
                    data = json.load(handle)
                self._data = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def update(self, **changes: object) -> bool:
        """Apply changes (None removes a key) and write atomically; False if it cannot."""
        data = {k: v for k, v in {**self.load(), **changes}.items() if v is not None}
        self._data = data
        import json

        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            # Private to the user: the install id is all anyone needs to ask a collector to forget it.
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
                json.dump(data, handle)
            os.replace(tmp, self.path)
        except OSError:
            try:  # noqa: SIM105 - contextlib would cost `import footfall` time
                os.unlink(tmp)
            except OSError:
                pass
            return False
        return True

    @property
    def enabled(self) -> bool | None:
        value = self.load().get("enabled")
        return value if isinstance(value, bool) else None

    @property
    def notice_version(self) -> int:
        value = self.load().get("notice_version")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def install_id(self, create: bool = True) -> str | None:
        """This tool's install id, made on first use; None when it cannot be kept."""
        value = self.load().get("install_id")
        if isinstance(value, str) and compiled(INSTALL_ID_PATTERN).match(value):
            return value
        if not create:
            return None
        fresh = new_install_id()
        return fresh if self.update(install_id=fresh) else None
