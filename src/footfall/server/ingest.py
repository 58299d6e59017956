"""The ingest pipeline: decoded events in, anonymised records out, to the store.

Anonymisation happens here, before anything is stored: install and session ids are
replaced by a keyed hash (HMAC-SHA256 under a server secret, scoped to the app), so
the raw ids never reach the store and hashes cannot be joined across apps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from concurrent.futures import Future
from typing import Any

from footfall.server.errors import BadRequest, UnknownApp
from footfall.server.protocols.native import (
    APP_PATTERN,
    ID_PATTERN,
    NativeBatch,
    NativeEvent,
    Rejection,
)
from footfall.server.stores.base import EventRecord, EventStore

HASH_HEX_CHARS = 32  # 128 bits of the HMAC


def keyed_hash(key: bytes, kind: str, app: str, value: str) -> str:
    if not value:
        return ""
    message = f"{kind}\0{app}\0{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:HASH_HEX_CHARS]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@dataclasses.dataclass
class IngestResult:
    """Per-event outcome, in request order; `durable` resolves once stored."""

    results: list[dict[str, str]]
    durable: Future[None]

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.results if r["status"] == "accepted")

    def body(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": len(self.results) - self.accepted,
            "results": self.results,
        }


class Ingestor:
    def __init__(self, store: EventStore, install_key: bytes) -> None:
        self.store = store
        self._key = install_key

    def ingest_native(self, batch: NativeBatch, received: dt.datetime) -> IngestResult:
        if not self.store.has_app(batch.app):
            raise UnknownApp(
                f"no app named {batch.app!r} is registered; run `footfall app add {batch.app}`"
            )
        context = batch.context
        install = keyed_hash(self._key, "install", batch.app, context.install)
        session = keyed_hash(self._key, "session", batch.app, context.session)
        records: list[EventRecord] = []
        results: list[dict[str, str]] = []
        for event in batch.events:
            if isinstance(event, Rejection):
                results.append({"status": "rejected", "code": event.code, "message": event.message})
                continue
            records.append(self._record(batch, event, install, session, received))
            results.append({"status": "accepted"})
        return IngestResult(results, self.store.write(records))

    def forget(self, document: Any) -> int:
        """`POST /v1/forget`: delete everything stored for one raw install id."""
        if not isinstance(document, dict):
            raise BadRequest(
                'send {"app": "<app id>", "install": "<install id>"}', code="invalid_request"
            )
        app, install = document.get("app"), document.get("install")
        if not isinstance(app, str) or not APP_PATTERN.match(app):
            raise BadRequest("'app' must be an app id", code="invalid_request")
        if not isinstance(install, str) or not ID_PATTERN.match(install):
            raise BadRequest("'install' must be an install id", code="invalid_request")
        if not self.store.has_app(app):
            raise UnknownApp(f"no app named {app!r} is registered")
        return self.store.delete_install(app, keyed_hash(self._key, "install", app, install))

    @staticmethod
    def _record(
        batch: NativeBatch, event: NativeEvent, install: str, session: str, received: dt.datetime
    ) -> EventRecord:
        platform = batch.context.platform
        environment = batch.context.environment
        return EventRecord(
            time=event.time,
            received=received,
            app=batch.app,
            app_version=batch.context.app_version,
            name=event.name,
            install=install,
            session=session,
            os=platform["os"],
            os_version=platform["os_version"],
            arch=platform["arch"],
            runtime=platform["runtime"],
            runtime_version=platform["runtime_version"],
            ci=environment["ci"],
            container=environment["container"],
            country="",
            props=json.dumps(event.props, separators=(",", ":"), sort_keys=True),
            source="native",
        )
