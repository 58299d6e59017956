"""The anonymous install id: random, per tool, kept in one documented file.

The file is `<config dir>/footfall/<app>.json`, where the config dir is
`$XDG_CONFIG_HOME` (default `~/.config`) on Linux and other Unix systems,
`~/Library/Application Support` on macOS and `%APPDATA%` on Windows. It holds
`{"install_id": "<32 hex digits>"}`. Each tool gets its own id, so two tools that
use Footfall cannot link their users. When the file cannot be written (read-only
home, full disk) the run sends no id at all rather than a new one each run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import uuid
from pathlib import Path

INSTALL_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def config_dir(environ: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if environ is None else environ
    if sys.platform == "win32" and env.get("APPDATA"):
        base = Path(env["APPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif env.get("XDG_CONFIG_HOME"):
        base = Path(env["XDG_CONFIG_HOME"])
    else:
        base = Path.home() / ".config"
    return base / "footfall"


def state_path(app: str, directory: Path) -> Path:
    return directory / f"{app}.json"


def load_or_create_install_id(app: str, directory: Path) -> str | None:
    """Return this tool's install id, creating it on first use; None if it cannot persist."""
    path = state_path(app, directory)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        install_id = state.get("install_id") if isinstance(state, dict) else None
        if isinstance(install_id, str) and INSTALL_ID_PATTERN.match(install_id):
            return install_id
    except (OSError, ValueError):
        pass
    install_id = uuid.uuid4().hex
    try:
        write_state(path, {"install_id": install_id})
    except OSError:
        return None
    return install_id


def write_state(path: Path, state: dict[str, object]) -> None:
    """Write atomically, so a crash never leaves a half-written file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
