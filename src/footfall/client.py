"""The client a tool holds: `footfall.init(...)` returns one, `track()` records events.

`Client` queues events for the background worker; `NullClient` is what a disabled
client looks like (a null object), so the host never needs `if enabled:` around calls.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import time
import uuid
from pathlib import Path
from typing import Any

from footfall.context import detect_context
from footfall.errors import debug, debug_enabled, no_throw
from footfall.identity import config_dir, load_or_create_install_id
from footfall.transport import DebugTransport, HttpTransport, Transport
from footfall.worker import DEFAULT_QUEUE_SIZE, BackgroundWorker

DEFAULT_EXIT_TIMEOUT_S = 0.25  # the most a process exit may wait for delivery
MAX_PROP_STRING_CHARS = 200
MAX_PROP_LIST_ITEMS = 32
TRUTHY = ("1", "true", "yes", "on")


def format_time(timestamp: float) -> str:
    moment = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clean_props(props: dict[str, Any]) -> dict[str, Any]:
    """Keep scalar values and lists of short strings; drop everything else."""
    cleaned: dict[str, Any] = {}
    for key, value in props.items():
        if isinstance(value, (bool, int, float)) or value is None:
            cleaned[key] = value
        elif isinstance(value, str):
            cleaned[key] = value[:MAX_PROP_STRING_CHARS]
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            cleaned[key] = [v[:MAX_PROP_STRING_CHARS] for v in value[:MAX_PROP_LIST_ITEMS]]
    return cleaned


class NullClient:
    """A client that records nothing: what `init` returns when analytics is off."""

    enabled = False

    def track(self, name: str, **props: Any) -> None:
        return None

    def flush(self, timeout: float = 2.0) -> bool:
        return True


class Client:
    enabled = True

    def __init__(
        self,
        app: str,
        transport: Transport,
        app_version: str = "",
        state_dir: Path | None = None,
        identity: str = "random",
        queue_size: int = DEFAULT_QUEUE_SIZE,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.app_version = app_version
        self._transport = transport
        self._state_dir = state_dir
        self._identity = identity
        self._session = uuid.uuid4().hex
        self._context: dict[str, Any] | None = None  # built lazily, off the host's path
        self._worker = BackgroundWorker(self._deliver, queue_size=queue_size)
        self._exit_timeout = exit_timeout
        atexit.register(self._flush_at_exit)

    @no_throw()
    def track(self, name: str, **props: Any) -> None:
        self._worker.submit({"name": name, "time": time.time(), "props": props})

    @no_throw(default=False)
    def flush(self, timeout: float = 2.0) -> bool:
        """Wait up to `timeout` seconds; True when every tracked event was delivered."""
        return self._worker.flush(timeout)

    def _flush_at_exit(self) -> None:
        self.flush(self._exit_timeout)

    def build_batch(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The exact payload of the native protocol v1 (see contract/native-v1.md)."""
        if self._context is None:
            install = None
            if self._identity == "random":
                directory = self._state_dir or config_dir()
                install = load_or_create_install_id(self.app, directory)
            self._context = {
                "install": install,
                "session": self._session,
                "app_version": self.app_version,
                **detect_context(),
            }
        return {
            "app": self.app,
            "context": self._context,
            "dropped": self._worker.dropped,
            "events": [
                {
                    "name": i["name"],
                    "time": format_time(i["time"]),
                    "props": clean_props(i["props"]),
                }
                for i in items
            ],
        }

    def _deliver(self, items: list[dict[str, Any]]) -> bool:
        return self._transport.send(self.build_batch(items))


def analytics_disabled_by_environment() -> str | None:
    """Name the variable that turns analytics off, if any."""
    if os.environ.get("DO_NOT_TRACK", "").strip().lower() in TRUTHY:
        return "DO_NOT_TRACK"
    return None


@no_throw(default=NullClient())
def init(
    app: str,
    endpoint: str,
    app_version: str = "",
    *,
    identity: str = "random",
    transport: Transport | None = None,
    state_dir: str | Path | None = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    exit_timeout: float = DEFAULT_EXIT_TIMEOUT_S,
) -> Client | NullClient:
    """Create the client for `app`, reporting to the collector at `endpoint`.

    `identity` is "random" (a random install id kept in the user's config dir) or
    "none" (no id at all: counts only). `transport` replaces HTTP delivery, for
    example with `MemoryTransport()` in tests. Never raises: on any problem, and when
    analytics is off, it returns a `NullClient` that records nothing.
    """
    if identity not in ("random", "none"):
        raise ValueError(f"identity must be 'random' or 'none', not {identity!r}")
    reason = analytics_disabled_by_environment()
    if reason:
        debug(f"analytics off: {reason} is set")
        return NullClient()
    if debug_enabled():
        transport = DebugTransport()
    elif transport is None:
        transport = HttpTransport(endpoint)
    return Client(
        app,
        transport,
        app_version=app_version,
        state_dir=Path(state_dir) if state_dir is not None else None,
        identity=identity,
        queue_size=queue_size,
        exit_timeout=exit_timeout,
    )
