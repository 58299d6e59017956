"""`POST /api/v1/backup`: the running server copies its data directory, online.

The server owns the store, so only it can copy it while serving: its writer copies the store
between two commits (see `EventStore.backup`), and footfall.server.backups copies the rest.
Only the local admin token may ask (not an API token, not a dashboard session): the server
writes its secrets to a path on its own machine, which only someone who can read the data
directory (where that token is kept) may choose.
"""

from __future__ import annotations

from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from footfall.server.auth.accounts import LOCAL_ADMIN
from footfall.server.backups import write_backup
from footfall.server.edge.context import ServerContext
from footfall.server.edge.openapi import Answer, Body, DocumentedRoute, Operation
from footfall.server.errors import BadRequest, Forbidden
from footfall.server.ingest.protocols.framing import parse_json

MAX_PATH_CHARS = 4096


def backup_routes(ctx: ServerContext) -> list[Route]:
    async def backup(request: Request) -> Response:
        principal = ctx.require(request)
        if principal.email != LOCAL_ADMIN or principal.session:
            raise Forbidden("only the local admin token (DIR/secrets.json) may back up the server")
        document = parse_json(await ctx.read_body(request, ctx.settings.max_body_bytes))
        destination = document.get("destination") if isinstance(document, dict) else None
        if not isinstance(destination, str) or not destination or len(destination) > MAX_PATH_CHARS:
            raise BadRequest('send {"destination": "<a new folder, as an absolute path>"}', code="invalid_request")
        if "\x00" in destination:
            raise BadRequest("the destination holds a NUL character", code="invalid_request")
        result = await run_in_threadpool(write_backup, ctx.store, ctx.settings.data, Path(destination), ctx.log.paused)
        await run_in_threadpool(ctx.accounts.audit, LOCAL_ADMIN, "backup", "", destination)
        return JSONResponse(result, status_code=201)

    return [DocumentedRoute("/api/v1/backup", backup, {"POST": BACKUP})]


BACKUP = Operation(
    "Back up the data directory, online, to a new folder on the server's machine",
    "operations",
    {201: Answer("what was copied", "application/json", {"type": "object"})},
    access="local-admin",
    description="Writes the server's secrets to the given path: never call it with a path others can read.",
    body=Body(
        {
            "type": "object",
            "required": ["destination"],
            "properties": {"destination": {"type": "string", "maxLength": MAX_PATH_CHARS, "example": "/srv/backups/1"}},
        }
    ),
    errors=(400, 401, 403, 408, 413),
    destructive=True,
)
