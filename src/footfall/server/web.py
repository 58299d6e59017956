"""The HTTP edge: `create_app(settings, store)` builds the ASGI app.

The collector's endpoints live in `collection`, the JSON API in `api`, the
dashboard's and public pages in `pages`. This module holds what they share
(`ServerContext`: who is asking, body reading, limits), the health and readiness
checks, metrics and error handling. No SQL here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from footfall.server.accounts import LOCAL_ADMIN, AccountStore, Principal
from footfall.server.cardinality import CardinalityGuard
from footfall.server.datadir import SECRETS_FILE, DataDir
from footfall.server.errors import (
    BadRequest,
    FootfallError,
    Forbidden,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    Unauthorized,
    error_body,
)
from footfall.server.geo import CountryResolver, Network, client_ip, parse_networks
from footfall.server.headers import SecurityHeadersMiddleware
from footfall.server.ingest import Ingestor
from footfall.server.metrics import Metrics
from footfall.server.operations import StoreOperations
from footfall.server.ratelimit import TokenBuckets
from footfall.server.settings import Settings
from footfall.server.spool import EventSpool
from footfall.server.stores.base import EventStore

log = logging.getLogger("footfall.server")

SESSION_COOKIE = "footfall_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclasses.dataclass
class ServerContext:
    """Everything the endpoints share, built once by `create_app`."""

    settings: Settings
    store: EventStore
    ingestor: Ingestor
    operations: StoreOperations
    metrics: Metrics
    spool: EventSpool
    accounts: AccountStore
    datadir: DataDir
    geo: CountryResolver
    trusted_proxies: tuple[Network, ...]
    per_client: TokenBuckets
    per_app: TokenBuckets
    per_app_bytes: TokenBuckets
    forgets: TokenBuckets
    logins: TokenBuckets
    _admin_token: tuple[tuple[int, int, int], str] | None = None  # (secrets.json's stat signature, token)

    def admin_token(self) -> str:
        """The local admin token, read again whenever secrets.json changes, so that
        `footfall admin rotate` takes effect on a running server at once. "" when unreadable."""
        path = self.datadir.path / SECRETS_FILE
        try:
            stat = path.stat()
            signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            cached = self._admin_token
            if cached is None or cached[0] != signature:
                # Read, never create: DataDir.secrets() would make a new install key.
                cached = (signature, str(json.loads(path.read_text(encoding="utf-8"))["admin_token"]))
                self._admin_token = cached
        except (OSError, ValueError, KeyError, TypeError):  # gone or damaged: no local admin until fixed
            return ""
        return cached[1]

    def client_ip(self, request: Request) -> str | None:
        """The client's address, used for the country and rate limits, then forgotten."""
        peer = request.client.host if request.client else None
        return client_ip(peer, request.headers.get("x-forwarded-for"), self.trusted_proxies)

    def limit_client(self, request: Request, ip: str | None, buckets: TokenBuckets | None = None) -> None:
        wait = self.limit_client_wait(ip, buckets)
        if wait:
            raise RateLimited("too many requests from this address; slow down", wait)

    def limit_client_wait(self, ip: str | None, buckets: TokenBuckets | None = None) -> float:
        """0 when the client may go on; otherwise the seconds to wait, with the refusal counted.

        The GA endpoints use this directly: GA's semantics are always 2xx, so they drop instead of raising.
        """
        buckets = self.per_client if buckets is None else buckets
        wait = buckets.take(buckets.key_for_address(ip))
        if wait:
            self.metrics.count("footfall_rate_limited_total", "Requests refused by a rate limit.", scope="client")
        return wait

    def limit_app(self, app: str, events: int) -> float:
        wait = self.per_app.take(app, cost=events)
        if wait:
            self.metrics.count("footfall_rate_limited_total", "Requests refused by a rate limit.", scope="app")
        return wait

    def limit_app_bytes(self, app: str, size: int) -> float:
        """Charge `size` request bytes (as decompressed) to the app's byte budget; as `limit_app`."""
        wait = self.per_app_bytes.take(app, cost=size)
        if wait:
            self.metrics.count("footfall_rate_limited_total", "Requests refused by a rate limit.", scope="app_bytes")
        return wait

    def principal(self, request: Request) -> Principal | None:
        """Who is asking: a bearer token (the local admin's or an API token) or a session cookie."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            token = token.strip()
            admin_token = self.admin_token()
            if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
                return Principal(LOCAL_ADMIN, True, {})
            return self.accounts.principal_for_token(token)
        cookie = request.cookies.get(SESSION_COOKIE)
        principal = self.accounts.principal_for_session(cookie) if cookie else None
        if principal is not None and request.method not in SAFE_METHODS and request.url.path.startswith("/api/"):
            # A browser sends the cookie with any cross-site form or text/plain POST (a sibling subdomain is
            # even same-site); only our own pages know the session's CSRF token to put in this header.
            sent = request.headers.get(CSRF_HEADER, "")
            if not (sent and hmac.compare_digest(sent.encode(), principal.csrf.encode())):
                raise Forbidden("a change made with a session cookie needs its X-CSRF-Token header", code="csrf")
        return principal

    def require(self, request: Request, app: str | None = None) -> Principal:
        """The principal, allowed to read `app`: 401 without credentials, 403 without a role."""
        principal = self.principal(request)
        if principal is None:
            raise Unauthorized("log in, or send 'Authorization: Bearer <token>'")
        if app is not None and not principal.can_read(app):
            raise Forbidden(f"this account has no role on {app!r}")
        return principal

    async def read_body(self, request: Request, limit: int) -> bytes:
        """The body, refused early when over `limit` bytes or slower than the read timeout."""
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadRequest("Content-Length is not a number", code="invalid_request")
            if int(declared) > limit:
                raise PayloadTooLarge(f"the body is larger than {limit} bytes")

        async def read() -> bytes:
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body is larger than {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)

        try:
            return await asyncio.wait_for(read(), self.settings.read_timeout_s)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"the body did not arrive within {self.settings.read_timeout_s:g} s") from None


def error_response(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def build_context(settings: Settings, store: EventStore) -> ServerContext:
    datadir = DataDir(settings.data)
    secrets = datadir.secrets()
    metrics = Metrics()
    spool = EventSpool(settings.data / "spool", settings.max_spool_bytes)
    metrics.gauge(
        "footfall_spool_events",
        "Acknowledged events waiting in the spool.",
        lambda: float(spool.depth()),
    )
    metrics.gauge(
        "footfall_spool_quarantined_events",
        "Spooled events the store would not take, kept in DIR/spool/quarantine for an operator.",
        lambda: float(spool.quarantined()),
    )
    accounts = AccountStore(settings.data / "accounts.sqlite")
    return ServerContext(
        settings=settings,
        store=store,
        ingestor=Ingestor(
            store, secrets.install_key, metrics, spool, CardinalityGuard(store, settings.max_distinct_values, metrics)
        ),
        operations=StoreOperations(store, accounts),
        metrics=metrics,
        spool=spool,
        accounts=accounts,
        datadir=datadir,
        geo=CountryResolver(settings.geoip_db or None),
        trusted_proxies=parse_networks(settings.trusted_proxies),
        per_client=TokenBuckets(settings.rate_per_client, settings.burst_per_client),
        per_app=TokenBuckets(settings.rate_per_app, settings.burst_per_app),
        per_app_bytes=TokenBuckets(settings.bytes_per_app, settings.burst_bytes_per_app),
        forgets=TokenBuckets(settings.forget_per_minute / 60, max(settings.forget_per_minute, 1)),
        logins=TokenBuckets(settings.logins_per_minute / 60, max(settings.logins_per_minute, 1)),
    )


def create_app(settings: Settings, store: EventStore) -> Starlette:
    from footfall.server.api import api_routes
    from footfall.server.collection import collection_routes
    from footfall.server.pages import page_routes

    ctx = build_context(settings, store)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problems = []
        try:
            await run_in_threadpool(store.query, "SELECT 1")
        except FootfallError as exc:
            problems.append(f"store: {exc.message}")
        if ctx.spool.over_limit:
            problems.append("the spool is over its limit")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        # Quarantined events do not stop collection, so the server stays ready; an operator is told.
        quarantined = await run_in_threadpool(ctx.spool.quarantined)
        warnings = [f"{quarantined} spooled events are in quarantine in {ctx.spool.quarantine}"] if quarantined else []
        return JSONResponse({"status": "ready", "warnings": warnings})

    async def metrics(request: Request) -> Response:
        text = await run_in_threadpool(ctx.metrics.render)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    async def footfall_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FootfallError)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return error_response(exc.code, exc.message, exc.status, headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(code, str(exc.detail), exc.status_code)

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.error("unexpected error", extra={"path": request.url.path, "error": type(exc).__name__})
        return error_response("internal", "the server failed; nothing was stored", 500)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *collection_routes(ctx),
        *api_routes(ctx),
        *page_routes(ctx),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeadersMiddleware, hsts=settings.public_url.startswith("https://"))],
        exception_handlers={
            FootfallError: footfall_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
    app.state.context = ctx
    return app
