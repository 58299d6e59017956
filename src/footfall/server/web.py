"""The HTTP edge: `create_app(settings, store)` builds the ASGI app.

Handlers translate HTTP to calls on the ingest pipeline and `StoreOperations`, and
errors to `error_body()` JSON. No SQL here, and no module-level app.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from footfall.server import dashboard
from footfall.server.auth import SESSION_COOKIE, SESSION_TTL_S, AdminAuth
from footfall.server.datadir import DataDir
from footfall.server.errors import (
    BadRequest,
    FootfallError,
    PayloadTooLarge,
    Unauthorized,
    error_body,
)
from footfall.server.ingest import Ingestor, utc_now
from footfall.server.operations import StoreOperations
from footfall.server.protocols.framing import decompress, parse_json
from footfall.server.protocols.native import decode_batch
from footfall.server.settings import Settings
from footfall.server.stores.base import EventStore

log = logging.getLogger("footfall.server")

Handler = Callable[[Request], Awaitable[Response]]


def error_response(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length is not a number", code="invalid_request")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Settings, store: EventStore) -> Starlette:
    secrets = DataDir(settings.data).secrets()
    auth = AdminAuth(secrets.admin_token)
    ingestor = Ingestor(store, secrets.install_key)
    operations = StoreOperations(store)
    max_age = dt.timedelta(hours=settings.max_event_age_hours)

    def authenticated(request: Request) -> bool:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and auth.check_session(cookie):
            return True
        return auth.check_bearer(request.headers.get("authorization", ""))

    def api(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if not authenticated(request):
                raise Unauthorized("log in, or send 'Authorization: Bearer <token>'")
            return await handler(request)

        return guarded

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def native_batch(request: Request) -> Response:
        body = await read_body(request, settings.max_body_bytes)
        data = decompress(
            body, request.headers.get("content-encoding", ""), settings.max_decompressed_bytes
        )
        received = utc_now()
        batch = decode_batch(
            parse_json(data),
            received=received,
            max_events=settings.max_events_per_batch,
            max_age=max_age,
        )
        result = ingestor.ingest_native(batch, received)
        await asyncio.wrap_future(result.durable)
        return JSONResponse(result.body(), status_code=202)

    async def forget(request: Request) -> Response:
        body = await read_body(request, settings.max_body_bytes)
        document = parse_json(decompress(body, request.headers.get("content-encoding", ""), 4096))
        deleted = await run_in_threadpool(ingestor.forget, document)
        return JSONResponse({"deleted": deleted})

    async def list_apps(request: Request) -> Response:
        return JSONResponse({"apps": await run_in_threadpool(operations.list_apps)})

    async def add_app(request: Request) -> Response:
        document = parse_json(await read_body(request, settings.max_body_bytes))
        name = document.get("name") if isinstance(document, dict) else None
        if not isinstance(name, str):
            raise BadRequest('send {"name": "<app id>"}', code="invalid_request")
        result = await run_in_threadpool(operations.add_app, name)
        return JSONResponse(result, status_code=201 if result["created"] else 200)

    async def app_summary(request: Request) -> Response:
        raw_days = request.query_params.get("days", "30")
        if not raw_days.isdigit():
            raise BadRequest("days must be a whole number", code="invalid_request")
        app = request.path_params["app"]
        return JSONResponse(await run_in_threadpool(operations.summary, app, int(raw_days)))

    async def overview(request: Request) -> Response:
        if not authenticated(request):
            return RedirectResponse("/login", status_code=303)

        def build() -> list[dict[str, Any]]:
            return [operations.summary(a["name"], 30) for a in operations.list_apps()]

        return HTMLResponse(dashboard.render_overview(await run_in_threadpool(build)))

    def logged_in_redirect(request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            auth.new_session(),
            max_age=SESSION_TTL_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            token = request.query_params.get("token")
            if token is None:
                return HTMLResponse(dashboard.render_login())
        else:
            form = urllib.parse.parse_qs(
                (await read_body(request, 4096)).decode("utf-8", "replace")
            )
            token = (form.get("token") or [""])[0]
        if not auth.check_token(token):
            return HTMLResponse(dashboard.render_login("That token is not right."), status_code=401)
        return logged_in_redirect(request)

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def footfall_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FootfallError)
        return error_response(exc.code, exc.message, exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(code, str(exc.detail), exc.status_code)

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s: %r", request.method, request.url.path, exc)
        return error_response("internal", "the server failed; the event was not stored", 500)

    routes = [
        Route("/healthz", healthz),
        Route("/v1/batch", native_batch, methods=["POST"]),
        Route("/v1/forget", forget, methods=["POST"]),
        Route("/api/v1/apps", api(list_apps), methods=["GET"]),
        Route("/api/v1/apps", api(add_app), methods=["POST"]),
        Route("/api/v1/apps/{app}/summary", api(app_summary)),
        Route("/", overview),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            FootfallError: footfall_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
