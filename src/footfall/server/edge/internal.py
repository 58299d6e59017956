"""The owner's side of `footfall serve --workers N`: its app on the Unix socket DIR/run/owner.sock.

The owner serves the same app there as on the TCP port, for the requests an ingest
worker forwards (everything but ingestion), plus a few internal routes that exist on
this socket only: the app configuration ingestion needs (`/internal/config`), the
distinct values the cardinality guard seeds from (`/internal/distinct`), and the
workers' counters (`/internal/report`).

The socket is reachable only by the data directory's owner (the folder is 0700, the
socket 0600), so what arrives on it comes from a worker. That is why the client address
a worker puts in `x-footfall-peer` is trusted here, and nowhere else: on the TCP port the
header is ignored like any other, so a client cannot pose as 127.0.0.1 to reach the
local-admin paths or to dodge a per-client limit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from footfall.server.edge.context import ServerContext
from footfall.server.errors import BadRequest
from footfall.server.metrics import MAX_COUNTER
from footfall.server.stores.base import EventStore

PEER_HEADER = "x-footfall-peer"  # the client's address, as the worker that took the connection saw it
SOCKET_NAME = "owner.sock"
MAX_UNIX_PATH_BYTES = 100  # sun_path holds 108 bytes on Linux; longer paths go through /proc/self/fd
MAX_REPORT_SERIES = 10_000  # a worker's report is bounded like any body: far above the counters that exist
_dir_fds: dict[str, int] = {}
_dir_fds_lock = threading.Lock()


def is_internal(path: str) -> bool:
    """Whether the owner's socket routes `path` (as decoded) to an internal route."""
    return path == "/internal" or path.startswith("/internal/")


def socket_address(run: Path) -> str:
    """The path to bind or connect to for DIR/run/owner.sock.

    A data directory deep in a temporary folder gives a path longer than a Unix socket's
    address may be; then the folder is opened once and named through this process's
    /proc/self/fd, which Linux resolves like the folder itself.
    """
    full = str(run / SOCKET_NAME)
    if len(full.encode()) < MAX_UNIX_PATH_BYTES:
        return full
    with _dir_fds_lock:
        fd = _dir_fds.get(str(run))
        if fd is None:
            fd = _dir_fds[str(run)] = os.open(run, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{SOCKET_NAME}"


def bind_owner_socket(run: Path) -> socket.socket:
    """The owner's listening Unix socket: the folder 0700, the socket 0600, a stale one replaced."""
    run.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(run, 0o700)
    address = socket_address(run)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)  # left by a killed owner; the DuckDB lock already says no other owner runs
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # created 0600, never briefly wider
    try:
        sock.bind(address)
    finally:
        os.umask(old_umask)
    os.chmod(address, 0o600)
    sock.listen(1024)
    return sock


def registry_snapshot(store: EventStore, removals: Mapping[str, int]) -> dict[str, Any]:
    """What ingestion needs of the app configuration: apps, keys (with their secret hashes),
    schemas, and how often each app was removed (`Ingestor.removals`)."""
    registry = store.registry
    # Copies first: the store's writer thread replaces entries meanwhile, and copying a dict or
    # a set is one step for the interpreter, unlike iterating over it.
    apps, keys, schemas = set(registry.apps), dict(registry.keys), dict(registry.schemas)
    return {
        "apps": sorted(apps),
        "keys": [[kind, key, app, secret] for (kind, key), (app, secret) in keys.items()],
        "schemas": schemas,
        "removals": dict(removals),
    }


def owner_socket_app(app: ASGIApp, ctx: ServerContext) -> ASGIApp:
    """`app` as served on the owner's Unix socket: the peer address from `x-footfall-peer`, and
    the internal routes."""

    async def config(request: Request) -> Response:
        return JSONResponse(registry_snapshot(ctx.store, ctx.ingestor.removals))

    async def distinct(request: Request) -> Response:
        app_name = request.query_params.get("app", "")
        field = request.query_params.get("field", "")
        limit = request.query_params.get("limit", "")
        if not limit.isdigit():
            raise BadRequest("limit must be a number", code="invalid_request")
        try:
            values = await run_in_threadpool(ctx.store.distinct_values, app_name, field, int(limit))
        except ValueError as exc:
            raise BadRequest(str(exc), code="invalid_request") from None
        return JSONResponse({"values": values})

    async def report(request: Request) -> Response:
        document = await request.json()
        if not isinstance(document, dict):
            raise BadRequest("a report is an object", code="invalid_request")
        add_report(ctx, document)
        return JSONResponse({"status": "ok"})

    from footfall.server.edge.app import EXCEPTION_HANDLERS

    internal = Starlette(
        routes=[
            Route("/internal/config", config, methods=["GET"]),
            Route("/internal/distinct", distinct, methods=["GET"]),
            Route("/internal/report", report, methods=["POST"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_internal(scope["path"]):
            await internal(scope, receive, send)
            return
        if scope["type"] == "http":
            peer = next((value for name, value in scope["headers"] if name == PEER_HEADER.encode()), b"")
            scope = {**scope, "client": (peer.decode("latin-1"), 0) if peer else None}
        await app(scope, receive, send)

    return serve


def add_report(ctx: ServerContext, document: dict[str, Any]) -> None:
    """Add one worker's report (what it counted since its last one) to the owner's metrics,
    once: a report sent again after a lost answer carries the same reporter and sequence."""
    reporter, sequence = document.get("reporter"), document.get("sequence")
    if not (isinstance(reporter, str) and isinstance(sequence, int)):
        raise BadRequest("a report has a reporter and a sequence number", code="invalid_request")
    counters = document.get("counters", [])
    if not isinstance(counters, list) or len(counters) > MAX_REPORT_SERIES:
        raise BadRequest("counters must be a list", code="invalid_request")
    if sequence <= ctx.report_sequences.get(reporter, 0):
        return  # added already
    ctx.report_sequences[reporter] = sequence
    for item in counters:
        if not (isinstance(item, list) and len(item) == 4):
            continue
        name, help_text, labels, amount = item
        if not (isinstance(name, str) and name.startswith("footfall_") and isinstance(help_text, str)):
            continue
        if not (isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())):
            continue
        if isinstance(amount, (int, float)):
            ctx.metrics.count(name, help_text, min(float(amount), MAX_COUNTER), **labels)
    histogram = document.get("histogram")
    if isinstance(histogram, list) and len(histogram) == 2 and isinstance(histogram[0], list):
        counts, total = histogram
        if all(isinstance(count, int) for count in counts) and isinstance(total, (int, float)):
            ctx.metrics.add_histogram(counts, float(total))
    log_stats = document.get("log")
    if isinstance(log_stats, dict):
        peer = ctx.log.peer_stats
        for field in ("appended_events", "appended_bytes", "appends", "syncs", "sealed"):
            value = log_stats.get(field)
            if isinstance(value, int) and value > 0:
                setattr(peer, field, getattr(peer, field) + value)
        seconds = log_stats.get("sync_seconds")
        if isinstance(seconds, (int, float)) and seconds > 0:
            peer.sync_seconds += float(seconds)
        refused = log_stats.get("refused_appends")
        if isinstance(refused, int) and refused > 0:
            ctx.log.peer_refused_appends += refused
