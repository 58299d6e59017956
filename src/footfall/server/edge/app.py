"""The HTTP edge: `create_app(settings, store)` builds the ASGI app.

The collector's endpoints live in `collection`, the JSON API in `api`, the
dashboard's and public pages in `pages`, what they share in `context`. This module
builds the context, and holds the health and readiness checks, metrics and error
handling. No SQL here.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from footfall.server.auth.accounts import AccountStore
from footfall.server.datadir import DataDir
from footfall.server.edge import dashboard
from footfall.server.edge.context import ServerContext
from footfall.server.edge.headers import SecurityHeadersMiddleware
from footfall.server.edge.ratelimit import TokenBuckets
from footfall.server.errors import (
    Backpressure,
    FootfallError,
    RateLimited,
    StoreUnavailable,
    error_body,
)
from footfall.server.ingest.cardinality import CardinalityGuard
from footfall.server.ingest.geo import CountryResolver, parse_networks
from footfall.server.ingest.log import IngestLog
from footfall.server.ingest.pipeline import Ingestor
from footfall.server.metrics import Metrics
from footfall.server.operations import RetentionKeeper, StoreOperations
from footfall.server.settings import Settings, accounts_location
from footfall.server.stores.base import EventStore

log = logging.getLogger("footfall.server")


def error_response(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def build_context(settings: Settings, store: EventStore, worker: int = 0) -> ServerContext:
    """The context of the owner (`worker` 0: the store, the loader, every endpoint), or of
    ingest worker `worker` (its own log segments, no loader; `store` is the owner's view)."""
    datadir = DataDir(settings.data)
    secrets = datadir.secrets()
    metrics = Metrics()
    ingest_log = IngestLog(
        datadir.log, None if worker else store, settings.max_log_bytes, settings.max_log_age_s, worker=worker
    )
    if not worker:
        store.barrier = ingest_log.catch_up  # a report sees every event acknowledged before it
    register_log_metrics(metrics, ingest_log)
    # Each of the N processes takes about 1/N of the connections (the kernel spreads them), so
    # an app's budgets are split evenly: together they allow what was configured. A client's
    # budget is not: one client's keep-alive connection stays with one process (docs/collector.md).
    share = 1 / settings.workers
    accounts = AccountStore(accounts_location(settings.accounts, settings.data))
    ingestor = Ingestor(
        store, secrets.install_key, metrics, ingest_log, CardinalityGuard(store, settings.max_distinct_values, metrics)
    )
    if not worker:
        store.on_removed = ingestor.forget_app  # an app another collector of a shared store removed
    return ServerContext(
        settings=settings,
        store=store,
        ingestor=ingestor,
        operations=StoreOperations(store, accounts, data=settings.data, ingestor=ingestor, log=ingest_log),
        metrics=metrics,
        log=ingest_log,
        accounts=accounts,
        datadir=datadir,
        geo=CountryResolver(settings.geoip_db or None),
        trusted_proxies=parse_networks(settings.trusted_proxies),
        per_client=TokenBuckets(settings.rate_per_client, settings.burst_per_client),
        per_app=TokenBuckets(settings.rate_per_app * share, settings.burst_per_app * share),
        per_app_bytes=TokenBuckets(settings.bytes_per_app * share, settings.burst_bytes_per_app * share),
        forgets=TokenBuckets(settings.forget_per_minute / 60, max(settings.forget_per_minute, 1)),
        logins=TokenBuckets(settings.logins_per_minute / 60, max(settings.logins_per_minute, 1)),
    )


def register_log_metrics(metrics: Metrics, ingest_log: IngestLog) -> None:
    metrics.gauge(
        "footfall_log_unloaded_segments",
        "Sealed ingest-log segments waiting to be loaded into the store.",
        lambda: float(ingest_log.backlog()[0]),
    )
    metrics.gauge(
        "footfall_log_unloaded_bytes",
        "Bytes of acknowledged events waiting in sealed segments.",
        lambda: float(ingest_log.backlog()[1]),
    )
    metrics.gauge(
        "footfall_log_oldest_unloaded_seconds",
        "Age of the oldest sealed segment not yet loaded (the loader's lag).",
        lambda: ingest_log.backlog()[2],
    )
    metrics.gauge(
        "footfall_log_quarantined_events",
        "Lines the store would not take, kept in DIR/log/quarantine for an operator.",
        lambda: float(ingest_log.quarantined()),
    )
    metrics.gauge(
        "footfall_log_loaded_events",
        "Events loaded from the log into the store since start.",
        lambda: float(ingest_log.loaded_events),
    )
    metrics.gauge(
        "footfall_log_syncs",
        "fdatasync calls of the log writer since start (each covers a group of appends).",
        lambda: float(ingest_log.writer.stats.syncs + ingest_log.peer_stats.syncs),
    )
    metrics.gauge(
        "footfall_log_appends",
        "Requests appended to the log since start; divided by footfall_log_syncs, the mean group size.",
        lambda: float(ingest_log.writer.stats.appends + ingest_log.peer_stats.appends),
    )
    metrics.gauge(
        "footfall_log_sync_seconds",
        "Seconds spent in fdatasync since start; divided by footfall_log_syncs, the mean sync latency.",
        lambda: ingest_log.writer.stats.sync_seconds + ingest_log.peer_stats.sync_seconds,
    )
    metrics.gauge(
        "footfall_log_backpressure_refusals",
        "Appends refused because the unloaded log was past a cap.",
        lambda: float(ingest_log.refused_appends + ingest_log.peer_refused_appends),
    )


def create_app(settings: Settings, store: EventStore) -> Starlette:
    from footfall.server.edge.api import api_routes
    from footfall.server.edge.backup import backup_routes
    from footfall.server.edge.collection import collection_routes
    from footfall.server.edge.influx import influx_routes
    from footfall.server.edge.openapi import HEALTHZ, METRICS, READYZ, DocumentedRoute
    from footfall.server.edge.pages import page_routes

    ctx = build_context(settings, store)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problems = []
        try:
            await run_in_threadpool(store.ping)
        except StoreUnavailable as exc:  # unauthenticated: not the store's address
            problems.append(f"store: {public_outage(exc)}")
        except FootfallError as exc:
            problems.append(f"store: {exc.message}")
        if pressure := ctx.log.pressure():
            problems.append(f"backpressure: {pressure}")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        # Quarantined lines and a store that is catching up do not stop collection, so the
        # server stays ready; an operator is told.
        warnings = []
        if quarantined := await run_in_threadpool(ctx.log.quarantined):
            warnings.append(f"{quarantined} events are in quarantine (DIR/log/quarantine)")
        if ctx.log.last_error:  # the details (which may name paths) are in the server's log, not here
            warnings.append("the store is not taking events; the log keeps them and the loader retries")
        return JSONResponse({"status": "ready", "warnings": warnings})

    async def metrics(request: Request) -> Response:
        text = await run_in_threadpool(ctx.metrics.render)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    routes = [
        DocumentedRoute("/healthz", healthz, {"GET": HEALTHZ}),
        DocumentedRoute("/readyz", readyz, {"GET": READYZ}),
        DocumentedRoute("/metrics", metrics, {"GET": METRICS}),
        *collection_routes(ctx),
        *influx_routes(ctx),
        *api_routes(ctx),
        *backup_routes(ctx),
        *page_routes(ctx),
    ]

    retention = RetentionKeeper(store, settings.retention_days, ctx.metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx.log.start()
        retention.start()
        try:
            yield
        finally:
            await run_in_threadpool(retention.close)
            for hook in ctx.on_shutdown:  # with --workers: stop them, so their last segments are sealed
                await run_in_threadpool(hook)
            await run_in_threadpool(ctx.log.close)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware(settings),
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.context = ctx
    return app


def middleware(settings: Settings) -> list[Middleware]:
    return [Middleware(SecurityHeadersMiddleware, hsts=settings.public_url.startswith("https://"))]


OUTAGE_LOG_INTERVAL_S = 10.0  # a failing store is logged at most this often, whatever the traffic
_outages_logged: dict[str, float] = {}  # message -> when it was last logged (monotonic)


def public_outage(exc: StoreUnavailable) -> str:
    """What a client is told of an unavailable store; its detail (the store's address, the
    engine's error) goes to the log, at most once per OUTAGE_LOG_INTERVAL_S for each message."""
    now = time.monotonic()
    if now - _outages_logged.get(exc.message, -OUTAGE_LOG_INTERVAL_S) >= OUTAGE_LOG_INTERVAL_S:
        _outages_logged[exc.message] = now
        log.warning("unavailable: %s", exc.message)
    return f"{exc.public_message} (The server's log says why.)"


async def footfall_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FootfallError)
    retry_after = exc.retry_after if isinstance(exc, (RateLimited, Backpressure)) else None
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    message = exc.message
    if isinstance(exc, StoreUnavailable) and not isinstance(exc, Backpressure):
        message = public_outage(exc)
    if "text/html" in request.headers.get("accept", ""):  # a browser: a page, not JSON
        title = "Unavailable" if exc.status >= 500 else "Refused"
        return HTMLResponse(dashboard.message_page(title, message), status_code=exc.status, headers=headers)
    return error_response(exc.code, message, exc.status, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(code, str(exc.detail), exc.status_code)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error", extra={"path": request.url.path, "error": type(exc).__name__})
    return error_response("internal", "the server failed; nothing was stored", 500)


EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    FootfallError: footfall_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
