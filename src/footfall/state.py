"""The per-tool state file: what Footfall remembers on a user's machine, all of it.

The file is `<config dir>/footfall/<app>.json`, where the config dir is
`$XDG_CONFIG_HOME` (default `~/.config`) on Linux and other Unix systems,
`~/Library/Application Support` on macOS and `%APPDATA%` on Windows. It holds:

    {"install_id": "<32 hex digits>",   random; absent in the no-id mode or when off
     "enabled": true | false,           set by `analytics on|off`; absent by default
     "notice_version": 1,               the newest notice this user has been shown
     "collector_refusal": {"code": "unknown_app", "time": "..."}}
                                        the collector's latest final refusal of a batch, kept
                                        for `analytics status` until it takes one again

Each tool has its own file, so two tools cannot link their users. Unsent batches
wait in `<config dir>/footfall/<app>.spool/`. When the file cannot be written
(read-only home, full disk), the run sends no id rather than a new one each run.
Once the user turned analytics off (`"enabled": false`) no id is made at all, and a run
that may not send (an opt-out variable is set, the notice run, opt-in not given) makes none.

The folder is 0700 and the file 0600. An older version made them 0755 and 0644, and
`os.makedirs(mode=...)` leaves an existing folder as it is, so the first read or write of
a run tightens both, best effort.
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
        # One lock for read-modify-write: the worker thread may make an id while the host
        # turns analytics off. `_thread` is built in, so this costs no import.
        import _thread

        self._lock = _thread.allocate_lock()
        self._tightened = False
        # False for a run that may not send (an opt-out variable, the notice run, opt-in not
        # yet given...): such a run makes no id, not even for `analytics preview` or `forget`.
        self.may_make_id = True

    def _tighten(self) -> None:
        """Once a run: make the folder and the file private, whatever an older version left."""
        if self._tightened:
            return
        self._tightened = True
        for path, mode in ((self.directory, 0o700), (self.path, 0o600)):
            try:  # noqa: SIM105 - contextlib would cost `import footfall` time
                os.chmod(path, mode)
            except OSError:
                pass  # not ours, read-only or absent: never the host's problem

    def load(self) -> dict[str, object]:
        if self._data is None:
            import json

            try:
                with open(self.path, encoding="utf-8") as handle:
                    data = json.load(handle)
                self._tighten()
                self._data = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def update(self, **changes: object) -> bool:
        """Apply changes (None removes a key) and write atomically; False if it cannot."""
        with self._lock:
            return self._update(changes)

    def _update(self, changes: dict[str, object]) -> bool:
        data = {k: v for k, v in {**self.load(), **changes}.items() if v is not None}
        self._data = data
        import json

        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            # Private to the user: the install id is all anyone needs to ask a collector to forget it.
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            self._tighten()
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

    def collector_refusal(self) -> str | None:
        """The error code of the collector's latest final refusal of a batch, if any."""
        value = self.load().get("collector_refusal")
        code = value.get("code") if isinstance(value, dict) else None
        return code if isinstance(code, str) and compiled(r"^[a-z][a-z0-9_]{0,39}$").match(code) else None

    def install_id(self, create: bool = True) -> str | None:
        """This tool's install id, made on first use; None when it cannot be kept.

        None, and nothing made, once the user turned analytics off (that choice deleted the id),
        and in a run that may not send (`may_make_id`): an existing id is kept, none is made.
        """
        if not create:
            return self._saved_id()
        with self._lock:  # checked and made at once: `analytics off` may be saving right now
            value = self._saved_id()
            if value is not None or not self.may_make_new_id():
                return value
            fresh = new_install_id()
            return fresh if self._update({"install_id": fresh}) else None

    def may_make_new_id(self) -> bool:
        return self.may_make_id and self.enabled is not False

    def _saved_id(self) -> str | None:
        value = self.load().get("install_id")
        return value if isinstance(value, str) and compiled(INSTALL_ID_PATTERN).match(value) else None
