"""The ingest pipeline, shared by every protocol: `Incoming` events in, stored records out.

For each event: the app's schema (if it registered one) drops undeclared events
and properties; every string that would be stored must be clean Unicode and pass
the safety net (an email, an address, a path, a token...); the distinct values of
each field are capped per app; install and run ids become a keyed hash (HMAC-SHA256 under a
server secret, scoped to the app), so raw ids never reach the store. Then
`persist` appends the records to the fsynced ingest log (`log`), and only then may
the collector acknowledge them; the log's loader stores them in bulk.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import functools
import hashlib
import hmac
import json
import time
from typing import Any

from footfall.schema import sensitive_kind, sensitive_kind_in
from footfall.server.errors import Backpressure, BadRequest, StoreUnavailable
from footfall.server.ingest.cardinality import CardinalityGuard
from footfall.server.ingest.log import IngestLog
from footfall.server.ingest.protocols import Incoming
from footfall.server.ingest.protocols.framing import storable
from footfall.server.ingest.schemas import AppSchema, parse_schema
from footfall.server.metrics import Metrics
from footfall.server.stores.base import APP_PATTERN, EventRecord, EventStore

HASH_HEX_CHARS = 32  # 128 bits of the HMAC


def keyed_hash(key: bytes, kind: str, app: str, value: str) -> str:
    if not value:
        return ""
    message = f"{kind}\0{app}\0{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:HASH_HEX_CHARS]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# Why the pipeline refuses an event, in words, for the native protocol's per-event results.
REFUSALS = {
    "undeclared_event": "the event is not in the app's schema",
    "invalid_text": "a text field holds a control character or a lone surrogate",
    "sensitive_name": "the event name looks like something that identifies a person or a machine",
}


# Checked strings repeat endlessly (a batch shares one context; versions, OS names and option
# names recur across clients), so verdicts are remembered: a bounded, pure cache of at most
# about CHECK_CACHE_ENTRIES * 16 KiB, the largest list a check takes.
CHECK_CACHE_ENTRIES = 4096


@functools.lru_cache(maxsize=CHECK_CACHE_ENTRIES)
def text_problem(text: str) -> str | None:
    """Why a string may not be stored as it is: "invalid_text", or "sensitive_<kind>"; None when it may."""
    if not storable(text):
        return "invalid_text"
    kind = sensitive_kind(text)
    return "sensitive_" + kind.replace(" ", "_") if kind else None


@functools.lru_cache(maxsize=CHECK_CACHE_ENTRIES)
def _texts_problem(texts: tuple[str, ...]) -> str | None:
    if not all(storable(text) for text in texts):
        return "invalid_text"
    kind = sensitive_kind_in(texts)
    return "sensitive_" + kind.replace(" ", "_") if kind else None


def value_problem(value: Any) -> str | None:
    """`text_problem` for a property value: a string, or a list of strings (item by item, and joined)."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, list):
        return _texts_problem(tuple(item for item in value if isinstance(item, str)))
    return None


def refusal_of(event: Incoming) -> str | None:
    """Why the whole event is refused before any property is looked at, if it is."""
    name = text_problem(event.name)
    if name is not None:
        return name if name == "invalid_text" else "sensitive_name"
    context = (event.app_version, *event.platform.values(), *event.environment.values())
    return None if all(storable(text) for text in context) else "invalid_text"


class Ingestor:
    def __init__(
        self,
        store: EventStore,
        install_key: bytes,
        metrics: Metrics,
        log: IngestLog,
        cardinality: CardinalityGuard | None = None,
    ) -> None:
        self.store = store
        self.cardinality = cardinality or CardinalityGuard(None, 0)  # the default caps nothing
        self.metrics = metrics
        self.log = log
        self._key = install_key
        self._schemas: dict[str, tuple[str, AppSchema]] = {}  # app -> (schema text, parsed)

    def _schema(self, app: str) -> AppSchema | None:
        text = self.store.schema(app)
        if text is None:
            return None
        cached = self._schemas.get(app)
        if cached is None or cached[0] != text:
            cached = (text, parse_schema(text))
            self._schemas[app] = cached
        return cached[1]

    def forget_app(self, app: str) -> None:
        """Drop what this process caches about a removed app: its parsed schema and its
        distinct-value slots, so an app later created under the name starts afresh."""
        self._schemas.pop(app, None)
        self.cardinality.forget_app(app)

    def reject(self, protocol: str, reason: str, count: int = 1) -> None:
        self.metrics.count(
            "footfall_events_rejected_total",
            "Events refused, by protocol and reason.",
            count,
            protocol=protocol,
            reason=reason,
        )

    def preview(self, event: Incoming) -> tuple[EventRecord | None, str, list[str]]:
        """What `record` would give, without counting it: for the debug endpoints."""
        return self.record(event, count=False)

    def record(self, event: Incoming, count: bool = True) -> tuple[EventRecord | None, str, list[str]]:
        """(the record, or None and why it was refused), and why each dropped value went.

        Every string that would be stored passes one check (`text_problem`): an event
        whose name or context text is not clean Unicode is refused; a context field that
        looks sensitive is stored empty; a property whose key or value fails is dropped.
        """
        refusal = refusal_of(event)
        props = event.props
        dropped: list[str] = []
        schema = self._schema(event.app)
        if refusal is None and schema is not None:
            filtered = schema.filter(event.name, props)
            if filtered is None:
                refusal = "undeclared_event"
            else:
                props, dropped = filtered
        if refusal is not None:
            if count:
                self.reject(event.source, refusal)
            return None, refusal, []

        def clean(field: str, text: str) -> str:
            problem = text_problem(text) if text else None
            if problem is None:
                return text
            dropped.append(f"{field}:{problem}")
            return ""

        app_version = clean("app_version", event.app_version)
        platform = {key: clean(key, value) for key, value in event.platform.items()}
        environment = {key: clean(key, value) for key, value in event.environment.items()}
        kept: dict[str, Any] = {}
        for key, value in props.items():
            problem = text_problem(key) or value_problem(value)
            if problem:
                dropped.append(problem)
            else:
                kept[key] = value
        if count:
            for reason in dropped:
                self.metrics.count(
                    "footfall_properties_dropped_total",
                    "Properties (and context fields, as 'field:reason') not stored, by reason.",
                    protocol=event.source,
                    reason=reason,
                )
        record = EventRecord(
            time=event.time,
            received=utc_now(),
            app=event.app,
            app_version=app_version,
            name=event.name,
            install=keyed_hash(self._key, "install", event.app, event.install),
            session=keyed_hash(self._key, "session", event.app, event.session),
            os=platform.get("os", ""),
            os_version=platform.get("os_version", ""),
            arch=platform.get("arch", ""),
            runtime=platform.get("runtime", ""),
            runtime_version=platform.get("runtime_version", ""),
            ci=environment.get("ci", ""),
            container=environment.get("container", ""),
            country=event.country,
            props=json.dumps(kept, separators=(",", ":"), sort_keys=True),
            source=event.source,
        )
        record = self.cardinality.fold(record, learn=count)
        return record, "", dropped

    async def persist(self, records: list[EventRecord]) -> None:
        """Return once the records are fsynced in the ingest log; raise StoreUnavailable if not.

        Raises Backpressure (a StoreUnavailable) when the log is past its caps: nothing is
        acknowledged that could not be kept.
        """
        if not records:
            return
        started = time.perf_counter()
        sources = collections.Counter(record.source for record in records)
        try:
            await asyncio.wrap_future(self.log.append(records))
        except (OSError, Backpressure) as exc:
            for source, count in sources.items():  # refused whole: the client may send them again
                self.reject(source, "backpressure" if isinstance(exc, Backpressure) else "log_unwritable", count)
            if isinstance(exc, Backpressure):
                raise
            raise StoreUnavailable(f"the ingest log cannot be written: {exc}") from exc
        self.metrics.observe_commit(time.perf_counter() - started)
        for source, count in sources.items():  # counted once acknowledged, not when they passed the checks
            self.metrics.count(
                "footfall_events_accepted_total", "Events acknowledged, by protocol.", count, protocol=source
            )

    def forget(self, document: Any) -> int:
        """`POST /v1/forget`: delete everything kept for one raw install id; returns how many went.

        The id may be any string a protocol stores as an install (a native id, a GA v1 `cid` such
        as `1234567.89012345` or a `uid`, a GA4 `client_id`, a Firebase `app_instance_id`): it is
        hashed exactly as `record` hashes it. The caller answers the same whatever this returns,
        and whether the app exists, so the endpoint is no oracle for guessable ids.

        Order: the log first, then the store. An acknowledged event waits in exactly one of the
        two, and a load moves it from the log to the store. A load holds the log's lock from
        reading a segment to deleting it, and so does the rewrite (see `IngestLog.forget`):
        either the load ran first and the store delete that follows removes what it stored, or
        it runs after and reads the rewritten segment. Deleting from the store first would let
        a load bring events back.
        """
        from footfall.server.ingest.protocols.ga_v1 import MAX_HIT_BYTES  # no stored id can be longer

        usage = 'send {"app": "<app id>", "install": "<install id>"}'
        if not isinstance(document, dict):
            raise BadRequest(usage, code="invalid_request")
        app, install = document.get("app"), document.get("install")
        if not isinstance(app, str) or not APP_PATTERN.match(app):
            raise BadRequest("'app' must be an app id; " + usage, code="invalid_request")
        if not isinstance(install, str) or not install or len(install) > MAX_HIT_BYTES:
            raise BadRequest(f"'install' must be an id of 1 to {MAX_HIT_BYTES} characters", code="invalid_request")
        try:
            install.encode()
        except UnicodeEncodeError:  # a lone surrogate: no protocol stores one
            raise BadRequest("'install' must be valid Unicode text", code="invalid_request") from None
        install_hash = keyed_hash(self._key, "install", app, install)
        removed = self.log.forget(app, install_hash)
        # An unknown app is deleted from too (nothing matches): the same work, the same answer.
        removed += self.store.delete_install(app, install_hash)
        self.metrics.count("footfall_forget_requests_total", "Forget requests carried out.")
        return removed
