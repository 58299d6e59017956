"""The collector's endpoints: native v1, Google Analytics v1 and GA4, and forget.

Every protocol ends in the same place: `Incoming` events through the ingest
pipeline, then `persist`, and only then an answer. The native protocol answers
errors with 4xx JSON; the GA protocols keep GA's own semantics (2xx, malformed or
rate-limited hits dropped and counted by reason), except that when the ingest log
is past its caps (backpressure) or unwritable they answer 503: nothing could be kept.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hmac
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from footfall.server.edge.context import ServerContext
from footfall.server.edge.openapi import JSON_OBJECT, Answer, Body, DocumentedRoute, Operation, Param
from footfall.server.errors import PayloadTooLarge, RateLimited, RequestTimeout, UnknownApp
from footfall.server.ingest.geo import truncate
from footfall.server.ingest.pipeline import RecordedBatch, utc_now
from footfall.server.ingest.protocols import Incoming, ga4, ga_v1
from footfall.server.ingest.protocols.framing import decompress, parse_json
from footfall.server.ingest.protocols.native import decode_body
from footfall.server.operations import secret_hash
from footfall.server.stores.base import EventRecord

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1x1 GIF
SLOW_DOWN = {"messageType": "ERROR", "description": "Too many requests from this address; slow down."}
NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate"}
FORGET_ACCEPTED = {"status": "accepted"}  # the only success answer of /v1/forget
MAX_FORGET_DECOMPRESSED_BYTES = 16 * 1024  # room for the longest GA v1 id (8 KB) and the app
HIDDEN_HASH = "<keyed hash>"  # what the debug endpoints show instead of an install or run hash


def stored_view(record: EventRecord) -> dict[str, Any]:
    """A record as it would be stored, for the debug endpoints, without its install and run hashes.

    The hashes stay hidden: anyone may call a debug endpoint with a chosen id, and the stored
    hash it answered would let them find that id's events in any export or report that shows
    hashes. Whether there is one is still shown.
    """
    import json

    view = dataclasses.asdict(record)
    view["time"] = record.time.isoformat(timespec="milliseconds")
    view["received"] = record.received.isoformat(timespec="milliseconds")
    view["props"] = json.loads(record.props)
    for field in ("install", "session"):
        view[field] = HIDDEN_HASH if view[field] else ""
    return view


def collection_routes(ctx: ServerContext) -> list[Route]:
    settings = ctx.settings
    max_age = dt.timedelta(hours=settings.max_event_age_hours)

    def locate(ip: str | None, anonymise: bool) -> str:
        return ctx.geo.country(truncate(ip) if anonymise and ip else ip)

    # -- native v1 ----------------------------------------------------------------

    def native_records(body: bytes, encoding: str, country: str) -> RecordedBatch:
        """Decode, check and anonymise one batch: CPU-bound, so it runs off the event loop.

        Returns each event's result and the accepted events as log lines.
        """
        data = decompress(body, encoding, settings.max_decompressed_bytes)
        batch = decode_body(
            data,
            received=utc_now(),
            max_events=settings.max_events_per_batch,
            max_age=max_age,
        )
        if not ctx.store.has_app(batch.app):
            ctx.ingestor.reject("native", "unknown_app", len(batch.events))
            raise UnknownApp(f"no app named {batch.app!r} is registered; run `footfall app add {batch.app}`")
        wait = ctx.limit_app(batch.app, len(batch.events))
        if wait:
            raise RateLimited(f"{batch.app} is receiving more events than its limit", wait)
        wait = ctx.limit_app_bytes(batch.app, len(data))
        if wait:
            raise RateLimited(f"{batch.app} is receiving more bytes than its budget", wait)
        if batch.dropped:
            ctx.metrics.count(
                "footfall_client_dropped_total",
                "Events clients dropped (queue full) and reported.",
                batch.dropped,
                app=batch.app,
            )
        return ctx.ingestor.record_batch(batch, country)

    async def native_batch(request: Request) -> Response:
        ip = ctx.client_ip(request)
        ctx.limit_client(request, ip)
        body = await ctx.read_body(request, settings.max_body_bytes)
        encoding = request.headers.get("content-encoding", "")
        recorded = await run_in_threadpool(native_records, body, encoding, ctx.geo.country(ip))
        await ctx.ingestor.persist_batch(recorded)
        accepted, results = recorded.accepted, recorded.results
        return JSONResponse({"accepted": accepted, "rejected": len(results) - accepted, "results": results}, 202)

    async def forget(request: Request) -> Response:
        """One answer, 200 `{"status": "accepted"}`, whether anything was kept and whether the app
        exists: a count would tell anyone who guesses a GA `uid` whether that user is here.
        200, not 202: SDKs released before this answer treat anything but 200 as a failed
        forget; they read `deleted` with a default, so the missing count is a clean success.
        Only a malformed request (4xx), the rate limit (429) or a store that is down (503) differ.
        """
        ctx.limit_client(request, ctx.client_ip(request), ctx.forgets)
        body = await ctx.read_body(request, settings.max_body_bytes)
        document = parse_json(
            decompress(body, request.headers.get("content-encoding", ""), MAX_FORGET_DECOMPRESSED_BYTES)
        )
        await run_in_threadpool(ctx.ingestor.forget, document)
        return JSONResponse(FORGET_ACCEPTED, 200)

    # -- Google Analytics v1 ------------------------------------------------------

    async def ga_hits(request: Request, batch: bool) -> tuple[list[ga_v1.Hit], list[ga_v1.ParserMessage]]:
        """Read the hits of one request; problems with the request itself come back as messages."""
        if request.method == "GET":
            if len(str(request.url.path)) + len(request.url.query) + 1 > ga_v1.MAX_URL_BYTES:
                return [], [ga_v1.ParserMessage("ERROR", "VALUE_INVALID", "A URL is limited to 8000 bytes.")]
            return [ga_v1.parse_hit(request.url.query)], []
        limit = ga_v1.MAX_BATCH_BYTES if batch else ga_v1.MAX_HIT_BYTES
        try:
            text = (await ctx.read_body(request, limit)).decode("utf-8", "replace")
        except PayloadTooLarge:
            return [], [ga_v1.ParserMessage("ERROR", "VALUE_INVALID", f"The body is limited to {limit} bytes.")]
        except RequestTimeout:
            return [], [ga_v1.ParserMessage("ERROR", "VALUE_INVALID", "The body arrived too slowly.")]
        if not batch:
            return [ga_v1.parse_hit(text)], []
        lines, problems = ga_v1.split_batch(text)
        return ([] if problems else [ga_v1.parse_hit(line) for line in lines]), problems

    def ga_incoming(hit: ga_v1.Hit, user_agent: str, ip: str | None) -> tuple[Incoming | None, str]:
        if not hit.valid:
            return None, hit.reason
        found = ctx.store.app_for_key("ga-tid", hit.params["tid"])
        if found is None:
            return None, "unknown_tid"
        return ga_v1.to_incoming(hit, found[0], utc_now(), user_agent, ip, locate), ""

    def ga_records(hits: list[ga_v1.Hit], user_agent: str, ip: str | None) -> list[EventRecord]:
        """The hits' records, after the per-app limits: CPU-bound, so it runs off the event loop."""
        records = []
        for hit in hits:
            incoming, reason = ga_incoming(hit, user_agent, ip)
            if incoming is None:
                ctx.ingestor.reject("ga-v1", reason)
                continue
            if ctx.limit_app(incoming.app, 1):
                ctx.ingestor.reject("ga-v1", "rate_limited")
                continue
            if ctx.limit_app_bytes(incoming.app, len(hit.text.encode())):
                ctx.ingestor.reject("ga-v1", "byte_budget")
                continue
            record, _, _ = ctx.ingestor.record(incoming)
            if record is not None:
                records.append(record)
        return records

    async def ga_collect(request: Request, batch: bool = False) -> Response:
        ip = ctx.client_ip(request)
        client_refused = ctx.limit_client_wait(ip) > 0  # GA semantics: drop and count, still answer 2xx
        hits, problems = await ga_hits(request, batch)
        if client_refused:
            ctx.ingestor.reject("ga-v1", "rate_limited", max(len(hits), 1))
            hits = []
        elif problems:
            ctx.ingestor.reject("ga-v1", "request_too_large")
        records = await run_in_threadpool(ga_records, hits, request.headers.get("user-agent", ""), ip)
        await ctx.ingestor.persist(records)  # fails only when the log is full or unwritable: then we cannot keep it
        if batch:
            return Response(status_code=200, headers=NO_CACHE)
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)

    async def ga_debug(request: Request) -> Response:
        ip = ctx.client_ip(request)
        if ctx.limit_client_wait(ip):  # GA semantics even here: a 200 that says why
            return JSONResponse({"hitParsingResult": [], "parserMessage": [SLOW_DOWN]})
        hits, problems = await ga_hits(request, batch=False)
        results = []
        for hit in hits:
            messages = [m.as_ga() for m in hit.messages]
            entry: dict[str, Any] = {
                "valid": hit.valid,
                "parserMessage": messages,
                "hit": "/debug/collect?" + hit.text[:2000],
            }
            incoming, reason = await run_in_threadpool(ga_incoming, hit, request.headers.get("user-agent", ""), ip)
            if reason == "unknown_tid":
                messages.append(
                    {
                        "messageType": "INFO",
                        "messageCode": "VALUE_INVALID",
                        "parameter": "tid",
                        "description": "This tid is not registered here: the hit would be dropped.",
                    }
                )
            if incoming is not None:
                record, refused, dropped = ctx.ingestor.preview(incoming)
                entry["footfall"] = {
                    "stored": stored_view(record) if record else None,
                    "refused": refused or None,
                    "droppedProperties": dropped,
                }
            results.append(entry)
        found = f"Found {len(hits)} hit{'' if len(hits) == 1 else 's'} in the request."
        summary = [m.as_ga() for m in problems] or [{"messageType": "INFO", "description": found}]
        return JSONResponse({"hitParsingResult": results, "parserMessage": summary})

    async def ga_batch(request: Request) -> Response:
        return await ga_collect(request, batch=True)

    # -- GA4 ----------------------------------------------------------------------

    async def ga4_request(request: Request) -> tuple[ga4.Ga4Request, tuple[str, str] | None, str]:
        """The parsed request, its (app, secret hash) if registered, and why it would be dropped."""
        firebase_id = request.query_params.get("firebase_app_id")
        kind, key = (
            ("firebase", firebase_id) if firebase_id else ("ga4", request.query_params.get("measurement_id", ""))
        )
        try:
            body = await ctx.read_body(request, ga4.MAX_BODY_BYTES)
        except (PayloadTooLarge, RequestTimeout) as exc:
            message = ga4.ValidationMessage("", exc.message, "VALUE_OUT_OF_BOUNDS")
            return ga4.Ga4Request("", [], {}, [message], 0), None, "body_too_large"
        parsed = ga4.parse_request(body, firebase=bool(firebase_id), received=utc_now())
        # Off the event loop: on an ingest worker, an unknown key asks the owner (edge.forwarding).
        found = await run_in_threadpool(ctx.store.app_for_key, kind, key) if key else None
        if found is None:
            return parsed, None, "unknown_measurement_id"
        secret = request.query_params.get("api_secret", "")
        if not hmac.compare_digest(secret_hash(secret), found[1]):
            return parsed, found, "wrong_api_secret"
        return parsed, found, ""

    async def ga4_collect(request: Request) -> Response:
        ip = ctx.client_ip(request)
        client_refused = ctx.limit_client_wait(ip) > 0  # GA4 semantics: drop and count, still answer 204
        parsed, found, reason = await ga4_request(request)
        total = len(parsed.events) + parsed.dropped_events
        if client_refused:
            ctx.ingestor.reject("ga4", "rate_limited", max(total, 1))
            return Response(status_code=204)
        if reason or found is None:
            ctx.ingestor.reject("ga4", reason or "invalid_request", max(total, 1))
            return Response(status_code=204)
        if parsed.dropped_events:
            ctx.ingestor.reject("ga4", "invalid_event", parsed.dropped_events)
        if parsed.events and ctx.limit_app(found[0], len(parsed.events)):
            ctx.ingestor.reject("ga4", "rate_limited", len(parsed.events))
            return Response(status_code=204)
        if parsed.events and ctx.limit_app_bytes(found[0], parsed.size):
            ctx.ingestor.reject("ga4", "byte_budget", len(parsed.events))
            return Response(status_code=204)
        app, country, user_agent = found[0], ctx.geo.country(ip), request.headers.get("user-agent", "")

        def ga4_records() -> list[EventRecord]:  # CPU-bound: off the event loop
            incoming = (ga4.to_incoming(parsed, event, app, user_agent, country) for event in parsed.events)
            return [record for record, _, _ in map(ctx.ingestor.record, incoming) if record is not None]

        await ctx.ingestor.persist(await run_in_threadpool(ga4_records))
        return Response(status_code=204)

    async def ga4_debug(request: Request) -> Response:
        ip = ctx.client_ip(request)
        if ctx.limit_client_wait(ip):
            slow_down = {"fieldPath": "", "validationCode": "VALUE_INVALID", "description": SLOW_DOWN["description"]}
            return JSONResponse({"validationMessages": [slow_down]})
        parsed, found, reason = await ga4_request(request)
        messages = [m.as_ga() for m in parsed.messages]
        answer: dict[str, Any] = {"validationMessages": messages}
        if reason == "unknown_measurement_id":
            messages.append(
                {
                    "fieldPath": "measurement_id",
                    "validationCode": "VALUE_INVALID",
                    "description": "This id is not registered here: events would be dropped.",
                }
            )
        elif found is not None:  # as GA's validation server, the api_secret is not checked here
            country = ctx.geo.country(ip)
            user_agent = request.headers.get("user-agent", "")
            previews = [
                ctx.ingestor.preview(ga4.to_incoming(parsed, e, found[0], user_agent, country)) for e in parsed.events
            ]
            answer["footfall"] = {"stored": [stored_view(r) for r, _, _ in previews if r is not None]}
        return JSONResponse(answer)

    return [
        DocumentedRoute("/v1/batch", native_batch, {"POST": NATIVE_BATCH}),
        DocumentedRoute("/v1/forget", forget, {"POST": FORGET}),
        DocumentedRoute("/collect", ga_collect, {"GET": GA_COLLECT_GET, "POST": GA_COLLECT_POST}),
        DocumentedRoute("/batch", ga_batch, {"POST": GA_BATCH}),
        DocumentedRoute("/debug/collect", ga_debug, {"GET": GA_DEBUG_GET, "POST": GA_DEBUG_POST}),
        DocumentedRoute("/mp/collect", ga4_collect, {"POST": GA4_COLLECT}),
        DocumentedRoute("/debug/mp/collect", ga4_debug, {"POST": GA4_DEBUG}),
    ]


# -- what /openapi.json says about each route (see edge/openapi.py) ----------------

BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["app", "context", "events"],
    "properties": {
        "app": {"type": "string"},
        "dropped": {"type": "integer", "minimum": 0},
        "context": {
            "type": "object",
            "properties": {
                "install": {"type": "string", "nullable": True},
                "session": {"type": "string", "nullable": True},
                "app_version": {"type": "string"},
                "platform": {"type": "object", "additionalProperties": {"type": "string"}},
                "environment": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "time"],
                "properties": {"name": {"type": "string"}, "time": {"type": "string"}, "props": {"type": "object"}},
            },
        },
    },
}
BATCH_RESULTS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer"},
        "rejected": {"type": "integer"},
        "results": {"type": "array", "items": {"type": "object"}},
    },
}
GA_HIT_PARAMETERS = tuple(
    Param(name, description)
    for name, description in (
        ("v", "protocol version, 1"),
        ("tid", "tracking id, e.g. UA-12345-1 (registered with the app)"),
        ("cid", "client id"),
        ("uid", "user id"),
        ("t", "hit type, e.g. event"),
        ("ec", "event category"),
        ("ea", "event action"),
        ("el", "event label"),
        ("ev", "event value"),
        ("an", "application name"),
        ("av", "application version"),
    )
)
GA_FORM = Body({"type": "string"}, "application/x-www-form-urlencoded", "one hit as GA's form-encoded parameters")
GA_BATCH_FORM = Body({"type": "string"}, "text/plain", "up to 20 hits, one per line, each form-encoded")
GA_DEBUG_ANSWER = Answer(
    "GA's hitParsingResult, with what Footfall would store (install and run hashes hidden)",
    "application/json",
    {"type": "object", "properties": {"hitParsingResult": {"type": "array"}, "parserMessage": {"type": "array"}}},
)
GA4_PARAMETERS = (
    Param("measurement_id", "the GA4 measurement id registered with the app, e.g. G-XXXXXXX"),
    Param("api_secret", "the API secret registered with it"),
    Param("firebase_app_id", "a Firebase app id, instead of measurement_id"),
)
GA4_BODY = Body(JSON_OBJECT, description="GA4's Measurement Protocol body: client_id, events, user_properties")
GA_SEMANTICS = "As GA: malformed or throttled hits are dropped and counted, and the answer is still 2xx."

NATIVE_BATCH = Operation(
    "Send a batch of events (the native protocol, as the SDK does)",
    "collector",
    {202: Answer("per-event results", "application/json", BATCH_RESULTS)},
    description="May be gzip-compressed (Content-Encoding). contract/native-v1.md is the protocol.",
    body=Body(BATCH_SCHEMA),
    errors=(400, 404, 408, 413, 422, 429, 503),
)
FORGET = Operation(
    "Forget an install: delete its events",
    "collector",
    {
        200: Answer(
            'always {"status": "accepted"}, whether anything was kept (200, not 202: every released SDK'
            " reads it as success)",
            "application/json",
            {
                "type": "object",
                "properties": {"status": {"type": "string", "enum": ["accepted"]}},
                "required": ["status"],
                "additionalProperties": False,
            },
        )
    },
    body=Body({"type": "object", "properties": {"app": {"type": "string"}, "install": {"type": "string"}}}),
    errors=(400, 408, 413, 429, 503),
)
GA_COLLECT_GET = Operation(
    "Google Analytics v1 (Measurement Protocol): one hit in the query",
    "collector",
    {200: Answer("always, as GA: a 1x1 GIF", "image/gif", {"type": "string", "format": "binary"})},
    description=GA_SEMANTICS,
    parameters=GA_HIT_PARAMETERS,
    errors=(503,),
)
GA_COLLECT_POST = Operation(
    "Google Analytics v1 (Measurement Protocol): one hit in the body",
    "collector",
    {200: Answer("always, as GA: a 1x1 GIF", "image/gif", {"type": "string", "format": "binary"})},
    description=GA_SEMANTICS,
    body=GA_FORM,
    errors=(503,),
)
GA_BATCH = Operation(
    "Google Analytics v1: a batch of hits",
    "collector",
    {200: Answer("always, as GA")},
    description=GA_SEMANTICS,
    body=GA_BATCH_FORM,
    errors=(503,),
)
GA_DEBUG_GET = Operation(
    "Google Analytics v1 validation: one hit in the query, checked, not stored",
    "collector",
    {200: GA_DEBUG_ANSWER},
    parameters=GA_HIT_PARAMETERS,
)
GA_DEBUG_POST = Operation(
    "Google Analytics v1 validation: one hit in the body, checked, not stored",
    "collector",
    {200: GA_DEBUG_ANSWER},
    body=GA_FORM,
)
GA4_COLLECT = Operation(
    "GA4 Measurement Protocol: events of one client",
    "collector",
    {204: Answer("always, as GA4")},
    description=GA_SEMANTICS,
    parameters=GA4_PARAMETERS,
    body=GA4_BODY,
    errors=(503,),
)
GA4_DEBUG = Operation(
    "GA4 validation: events checked, not stored (the api_secret is not checked, as GA's)",
    "collector",
    {
        200: Answer(
            "GA4's validationMessages, with what Footfall would store",
            "application/json",
            {"type": "object", "properties": {"validationMessages": {"type": "array"}}},
        )
    },
    parameters=GA4_PARAMETERS,
    body=GA4_BODY,
)
