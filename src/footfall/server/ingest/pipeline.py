"""The ingest pipeline, shared by every protocol: `Incoming` events in, stored records out.

For each event: the app's schema (if it registered one) drops undeclared events
and properties; every string that would be stored must be clean Unicode and pass
the safety net (an email, an address, a path, a token...); the distinct values of
each field are capped per app; install and run ids become a keyed hash (HMAC-SHA256 under a
server secret, scoped to the app), so raw ids never reach the store. Then
`persist` appends the records to the fsynced ingest log (`log`), and only then may
the collector acknowledge them; the log's loader stores them in bulk.

A native batch goes through `record_batch`, which gives the records `record` would give
event by event, already encoded as log lines, checking and hashing the shared context once.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import msgspec

from footfall.schema import sensitive_kind, sensitive_kind_in
from footfall.server.errors import Backpressure, BadRequest, StoreUnavailable
from footfall.server.ingest.cardinality import CardinalityGuard
from footfall.server.ingest.log import IngestLog
from footfall.server.ingest.protocols import Incoming
from footfall.server.ingest.protocols.framing import storable
from footfall.server.ingest.protocols.native import NativeBatch, Rejection
from footfall.server.ingest.schemas import AppSchema, parse_schema
from footfall.server.ingest.segments import LineTemplate
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


def name_refusal(name: str) -> str | None:
    problem = text_problem(name)
    return problem if problem in (None, "invalid_text") else "sensitive_name"


def context_refusal(app_version: str, platform: dict[str, str], environment: dict[str, str]) -> str | None:
    context = (app_version, *platform.values(), *environment.values())
    return None if all(storable(text) for text in context) else "invalid_text"


def refusal_of(event: Incoming) -> str | None:
    """Why the whole event is refused before any property is looked at, if it is."""
    return name_refusal(event.name) or context_refusal(event.app_version, event.platform, event.environment)


def clean_context(
    app_version: str, platform: dict[str, str], environment: dict[str, str], dropped: list[str]
) -> tuple[str, dict[str, str], dict[str, str]]:
    """The context's texts, each that fails `text_problem` stored empty (and named in `dropped`)."""

    def clean(field: str, text: str) -> str:
        problem = text_problem(text) if text else None
        if problem is None:
            return text
        dropped.append(f"{field}:{problem}")
        return ""

    return (
        clean("app_version", app_version),
        {key: clean(key, value) for key, value in platform.items()},
        {key: clean(key, value) for key, value in environment.items()},
    )


def kept_props(props: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    """The properties whose key and value pass `text_problem`; why each other one went is added to `dropped`."""
    kept: dict[str, Any] = {}
    for key, value in props.items():
        problem = text_problem(key)
        if problem is None and isinstance(value, (str, list)):  # value_problem, without a call for the rest
            problem = value_problem(value)
        if problem:
            dropped.append(problem)
        else:
            kept[key] = value
    return kept


_SORTED_JSON = msgspec.json.Encoder(order="sorted")


def props_text(props: dict[str, Any]) -> str:
    """The properties as stored: compact JSON, keys sorted, ASCII (`json.dumps`'s text exactly).

    msgspec writes the same text several times faster, except for floats ("1e+16" against
    "1e16"), non-ASCII (which json.dumps escapes) and DEL: those take json.dumps.
    """
    if float not in map(type, props.values()):  # a subclass of float cannot come from JSON
        try:
            text = _SORTED_JSON.encode(props)
        except (TypeError, OverflowError, UnicodeEncodeError):  # an int past 64 bits, a lone surrogate
            pass
        else:
            if text.isascii() and b"\x7f" not in text:
                return text.decode()
    return json.dumps(props, separators=(",", ":"), sort_keys=True)


@dataclasses.dataclass
class RecordedBatch:
    """`Ingestor.record_batch`'s answer: each event's result, in order, and the accepted ones as log lines."""

    results: list[dict[str, str]]
    lines: bytes
    accepted: int
    source: str


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
        # How often each app was removed while this process ran: an ingest worker compares the
        # owner's counts, so an app removed and created again between two of its refreshes is
        # forgotten there too (edge.forwarding).
        self.removals: dict[str, int] = {}

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
        self.removals[app] = self.removals.get(app, 0) + 1

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

        app_version, platform, environment = clean_context(
            event.app_version, event.platform, event.environment, dropped
        )
        kept = kept_props(props, dropped)
        if count:
            self._count_dropped(event.source, dropped)
        record = self._record(
            event.app, event.time, utc_now(), event.name, app_version, event.install, event.session,
            platform, environment, event.country, props_text(kept), event.source,
        )  # fmt: skip
        record = self.cardinality.fold(record, learn=count)
        return record, "", dropped

    def _record(
        self, app: str, time: dt.datetime, received: dt.datetime, name: str, app_version: str, install: str,
        session: str, platform: dict[str, str], environment: dict[str, str], country: str, props: str, source: str,
    ) -> EventRecord:  # fmt: skip
        """A record of cleaned fields; the raw install and run ids become their keyed hashes here."""
        return EventRecord(
            time=time,
            received=received,
            app=app,
            app_version=app_version,
            name=name,
            install=keyed_hash(self._key, "install", app, install),
            session=keyed_hash(self._key, "session", app, session),
            os=platform.get("os", ""),
            os_version=platform.get("os_version", ""),
            arch=platform.get("arch", ""),
            runtime=platform.get("runtime", ""),
            runtime_version=platform.get("runtime_version", ""),
            ci=environment.get("ci", ""),
            container=environment.get("container", ""),
            country=country,
            props=props,
            source=source,
        )

    def _count_dropped(self, source: str, dropped: list[str]) -> None:
        for reason in dropped:
            self.metrics.count(
                "footfall_properties_dropped_total",
                "Properties (and context fields, as 'field:reason') not stored, by reason.",
                protocol=source,
                reason=reason,
            )

    def record_batch(self, batch: NativeBatch, country: str, source: str = "native") -> RecordedBatch:
        """`record` for each event of a native batch, whose events share an app and a context.

        The same records, counted the same, as `record` gives event by event, for less work:
        the context is checked and cleaned once, the install and run ids hashed once (HMAC),
        and each line is written from a template of what the batch's events of one name share.
        """
        app, context = batch.app, batch.context
        refused_context = context_refusal(context.app_version, context.platform, context.environment)
        context_dropped: list[str] = []
        app_version, platform, environment = clean_context(
            context.app_version, context.platform, context.environment, context_dropped
        )
        schema = self._schema(app)
        received = utc_now()
        base = self._record(
            app, received, received, "", app_version, context.install, context.session,
            platform, environment, country, "{}", source,
        )  # fmt: skip
        # Per event name, the line template once the cardinality guard has let its record through
        # unchanged: every value is then known to the guard, so it would let the rest through too.
        templates: dict[str, LineTemplate] = {}
        results: list[dict[str, str]] = []
        lines: list[str] = []
        accepted: dict[str, str] = {"status": "accepted"}  # one object for every accepted event: only serialised
        for event in batch.events:
            if isinstance(event, Rejection):
                self.reject(source, event.code)
                results.append({"status": "rejected", "code": event.code, "message": event.message})
                continue
            refusal = name_refusal(event.name) or refused_context
            props = event.props
            dropped = context_dropped.copy()
            if refusal is None and schema is not None:
                filtered = schema.filter(event.name, props)
                if filtered is None:
                    refusal = "undeclared_event"
                else:
                    props, dropped_by_schema = filtered
                    dropped += dropped_by_schema
            if refusal is not None:
                self.reject(source, refusal)
                message = f"{event.name!r}: {REFUSALS[refusal]}"
                results.append({"status": "rejected", "code": refusal, "message": message})
                continue
            text = props_text(kept_props(props, dropped))
            if dropped:
                self._count_dropped(source, dropped)
            template = templates.get(event.name)
            if template is not None:
                lines.append(template.line(event.time, text))
            else:
                record = dataclasses.replace(base, time=event.time, name=event.name, props=text)
                folded = self.cardinality.fold(record)
                if folded is record:
                    template = templates[event.name] = LineTemplate(record)
                    lines.append(template.line(event.time, text))
                else:  # folded: not a template, so the next event of this name is folded (and counted) too
                    lines.append(LineTemplate(folded).line(folded.time, folded.props))
            results.append(accepted)
        return RecordedBatch(results, "".join(lines).encode(), len(lines), source)

    async def persist(self, records: list[EventRecord]) -> None:
        """Return once the records are fsynced in the ingest log; raise StoreUnavailable if not.

        Raises Backpressure (a StoreUnavailable) when the log is past its caps: nothing is
        acknowledged that could not be kept.
        """
        if records:
            sources = collections.Counter(record.source for record in records)
            await self._persist(lambda: self.log.append(records), sources)

    async def persist_batch(self, batch: RecordedBatch) -> None:
        """`persist` for the lines of `record_batch`."""
        if batch.accepted:
            sources = collections.Counter({batch.source: batch.accepted})
            await self._persist(lambda: self.log.append_encoded(batch.lines, batch.accepted), sources)

    async def _persist(self, append: Callable[[], Future[None]], sources: collections.Counter[str]) -> None:
        started = time.perf_counter()
        try:
            await asyncio.wrap_future(append())
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
