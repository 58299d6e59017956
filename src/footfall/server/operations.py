"""What an operator can do, as a library: the HTTP API and the CLI both call this.

`StoreOperations` works on an open store. `footfall.server.control.RemoteOperations`
offers the same methods over the HTTP API of a running server, for when that
server owns the embedded database. Results are JSON-ready dicts.
"""

from __future__ import annotations

from typing import Any, Protocol

from footfall.server import reports
from footfall.server.errors import NotFound, UsageError
from footfall.server.protocols.native import APP_PATTERN
from footfall.server.stores.base import EventStore

MAX_REPORT_DAYS = 3660


class Operations(Protocol):
    def add_app(self, name: str) -> dict[str, Any]: ...

    def list_apps(self) -> list[dict[str, Any]]: ...

    def summary(self, app: str, days: int) -> dict[str, Any]: ...


def check_app_name(name: str) -> str:
    if not APP_PATTERN.match(name):
        raise UsageError(
            f"{name!r} is not a valid app id: use 1 to 64 lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_REPORT_DAYS:
        raise UsageError(f"days must be between 1 and {MAX_REPORT_DAYS}, not {days}")
    return days


class StoreOperations:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def add_app(self, name: str) -> dict[str, Any]:
        created = self.store.add_app(check_app_name(name))
        return {"name": name, "created": created}

    def list_apps(self) -> list[dict[str, Any]]:
        return [
            {"name": app.name, "created": app.created.isoformat(timespec="seconds")}
            for app in self.store.list_apps()
        ]

    def summary(self, app: str, days: int) -> dict[str, Any]:
        if not self.store.has_app(app):
            raise NotFound(f"no app named {app!r}", code="unknown_app")
        return reports.summary(self.store, app, check_days(days))
