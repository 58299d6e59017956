"""InfluxDB's write endpoints: `POST /api/v2/write` and InfluxDB 1.x's `POST /write`.

Tools that copied Homebrew's analytics post one line of line protocol per event, with
`Authorization: Token T`, to `/api/v2/write?bucket=...&precision=s`. The token and the
bucket (1.x: the password and the database) name an app (`footfall app add NAME
--influx-token T [--influx-bucket B]`). Lines go through the same pipeline as every other
protocol (schema, safety net, country, no ids), and the answers are InfluxDB's: 204 once
stored; 400 `{"code": "invalid", "message": ...}` naming the failing lines while the valid
lines are stored (a partial write); 401 for credentials no app has; 413 past the body caps;
429 past a rate limit; 503 under backpressure. Every error has InfluxDB's shape.

Credentials, as InfluxDB and its clients send them:

- `Authorization: Token T` (InfluxDB 2) or `Bearer T` (InfluxDB 3);
- `Authorization: Token USER:PASSWORD`, as `influxdb-client` sends for InfluxDB 1.8, where
  the password is the token (and the bucket `DATABASE/RETENTION_POLICY`: the policy is ignored);
- 1.x: the `u` and `p` query parameters, or `Authorization: Basic`, the password being the token.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from footfall.server.edge.context import ServerContext
from footfall.server.edge.openapi import Answer, Body, DocumentedRoute, Operation, Param
from footfall.server.errors import (
    Backpressure,
    BadRequest,
    FootfallError,
    RateLimited,
    Unauthorized,
)
from footfall.server.ingest.pipeline import utc_now
from footfall.server.ingest.protocols import influx
from footfall.server.ingest.protocols.framing import decompress
from footfall.server.operations import influx_key
from footfall.server.stores.base import EventRecord

ANY_BUCKET = "*"  # an app registered without --influx-bucket takes every bucket of its token
MAX_CREDENTIAL_CHARS = 1024  # a token or password longer than this is no registered one

# InfluxDB's error codes (its `{"code", "message"}` answers), by HTTP status.
INFLUX_CODES = {
    400: "invalid",
    401: "unauthorized",
    404: "not found",
    405: "method not allowed",
    408: "invalid",
    413: "request too large",
    415: "unsupported media type",
    422: "unprocessable entity",
    429: "too many requests",
    503: "unavailable",
}


def influx_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Every answer but 204: InfluxDB's shape, `{"code": ..., "message": ...}`."""
    return JSONResponse(
        {"code": INFLUX_CODES.get(status, "internal error"), "message": message}, status, headers=headers
    )


def credentials(request: Request, v1: bool) -> list[str]:
    """The tokens the request may carry, most likely first (see the module docstring)."""
    found: list[str] = []
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() in ("token", "bearer") and value:
        found.append(value)
        if ":" in value:
            found.append(value.partition(":")[2])  # influxdb-client's USER:PASSWORD for InfluxDB 1.8
    elif scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        found.append(decoded.partition(":")[2])
    if v1 and "p" in request.query_params:
        found.append(request.query_params["p"])
    return [token for token in found if token and len(token) <= MAX_CREDENTIAL_CHARS]


def buckets(bucket: str) -> list[str]:
    """The bucket, then its database part when it is `DATABASE/RETENTION_POLICY`, then any bucket."""
    found = [bucket]
    if "/" in bucket:
        found.append(bucket.partition("/")[0])
    return [*found, ANY_BUCKET]


def influx_routes(ctx: ServerContext) -> list[Route]:
    settings = ctx.settings
    max_age = dt.timedelta(hours=settings.max_event_age_hours)

    def app_for(tokens: list[str], bucket: str) -> str | None:
        for token in tokens:
            for name in buckets(bucket):
                found = ctx.store.app_for_key("influx", influx_key(name, token))
                if found is not None:
                    return found[0]
        return None

    def influx_records(
        app: str, body: bytes, encoding: str, precision_ns: int, country: str
    ) -> tuple[list[EventRecord], str]:
        """Decode, check and anonymise one body (CPU-bound, so off the event loop): the records to
        persist and, when some lines failed, InfluxDB's partial-write message."""
        data = decompress(body, encoding, settings.max_decompressed_bytes)
        try:
            parsed = influx.parse_body(data)
        except influx.LineError as exc:
            ctx.ingestor.reject("influx", "too_many_lines")
            raise BadRequest(str(exc)) from None
        if parsed.points:
            wait = ctx.limit_app(app, len(parsed.points)) or ctx.limit_app_bytes(app, len(data))
            if wait:
                ctx.ingestor.reject("influx", "rate_limited", len(parsed.points))
                raise RateLimited(f"{app} is receiving more than its limit", wait)
        received = utc_now()
        errors = list(parsed.errors)
        records: list[EventRecord] = []
        for number, point in parsed.points:
            try:
                moment = influx.point_time(point, precision_ns, received, max_age)
            except influx.LineError as exc:
                errors.append((number, str(exc)))
                continue
            record, _, _ = ctx.ingestor.record(influx.to_incoming(point, app, moment, country))
            if record is not None:  # refused by the schema or the safety net: counted, as InfluxDB would store it
                records.append(record)
        if errors:
            ctx.ingestor.reject("influx", "invalid_line", len(errors))
            errors.sort()
        return records, influx.error_message(errors, len(records)) if errors else ""

    async def write(request: Request, v1: bool) -> Response:
        try:
            ip = ctx.client_ip(request)
            ctx.limit_client(request, ip)
            query = request.query_params
            bucket = query.get("db" if v1 else "bucket", "")
            precisions = influx.PRECISION_NS_V1 if v1 else influx.PRECISION_NS
            precision = query.get("precision") or "ns"
            # Off the event loop: on an ingest worker, an unknown token asks the owner (edge.forwarding).
            app = await run_in_threadpool(app_for, credentials(request, v1), bucket)
            if app is None:
                ctx.ingestor.reject("influx", "unknown_token")
                raise Unauthorized("unauthorized access: no app has this token and bucket")
            if not bucket:
                raise BadRequest(f"{'db' if v1 else 'bucket'} is required")
            if precision not in precisions:
                raise BadRequest(f"precision must be one of {', '.join(precisions)}, not {influx.quoted(precision)}")
            body = await ctx.read_body(request, settings.max_body_bytes)
            records, problem = await run_in_threadpool(
                influx_records,
                app,
                body,
                request.headers.get("content-encoding", ""),
                precisions[precision],
                ctx.geo.country(ip),
            )
            await ctx.ingestor.persist(records)
        except FootfallError as exc:
            retry_after = exc.retry_after if isinstance(exc, (RateLimited, Backpressure)) else None
            return influx_error(exc.status, exc.message, {"Retry-After": str(retry_after)} if retry_after else None)
        if problem:
            return influx_error(400, problem)
        return Response(status_code=204)

    async def write_v2(request: Request) -> Response:
        return await write(request, v1=False)

    async def write_v1(request: Request) -> Response:
        return await write(request, v1=True)

    return [
        DocumentedRoute("/api/v2/write", write_v2, {"POST": WRITE_V2}),
        DocumentedRoute("/write", write_v1, {"POST": WRITE_V1}),
    ]


# -- what /openapi.json says about each route (see edge/openapi.py) ----------------

INFLUX_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}
LINE_PROTOCOL = Body(
    {"type": "string"},
    "text/plain",
    "InfluxDB line protocol, one point per line (gzip accepted with Content-Encoding); the measurement is"
    " the event name, tags and fields its properties",
)
INFLUX_ANSWERS = {
    204: Answer("every line is stored"),
    400: Answer(
        "a partial write: the lines named failed, the others are stored (or a bad parameter)",
        "application/json",
        INFLUX_ERROR,
    ),
    401: Answer("no app has this token with this bucket", "application/json", INFLUX_ERROR),
    408: Answer("the body arrived too slowly", "application/json", INFLUX_ERROR),
    413: Answer("the body is too large", "application/json", INFLUX_ERROR),
    429: Answer("too many requests: wait for Retry-After seconds", "application/json", INFLUX_ERROR),
    503: Answer("nothing can be kept now (backpressure): retry later", "application/json", INFLUX_ERROR),
}
WRITE_V2 = Operation(
    "InfluxDB 2 write: line protocol, as Homebrew-style tools send it",
    "collector",
    INFLUX_ANSWERS,
    description="Authorization: Token <token> (or Bearer). InfluxDB's answers and error shape.",
    parameters=(
        Param("bucket", "the bucket registered with the token (--influx-bucket)"),
        Param("org", "ignored: the token names the app"),
        Param("precision", "of the timestamps", {"type": "string", "enum": sorted(influx.PRECISION_NS)}),
    ),
    body=LINE_PROTOCOL,
)
WRITE_V1 = Operation(
    "InfluxDB 1.x write: line protocol",
    "collector",
    INFLUX_ANSWERS,
    description="The password (p, or Basic authentication) is the token. InfluxDB's answers and error shape.",
    parameters=(
        Param("db", "the bucket registered with the token (--influx-bucket)"),
        Param("rp", "ignored"),
        Param("u", "ignored"),
        Param("p", "the token"),
        Param("precision", "of the timestamps", {"type": "string", "enum": sorted(influx.PRECISION_NS_V1)}),
    ),
    body=LINE_PROTOCOL,
)
