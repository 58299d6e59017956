"""The maintainers' JSON API under /api/v1, behind the admin token or a session,
the OpenAPI document (`/openapi.json`) built from every route's declaration (see
`edge.openapi`), and `/docs`, the same document as a page for people.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from footfall.server.auth.accounts import Principal
from footfall.server.edge import dashboard
from footfall.server.edge.context import ServerContext
from footfall.server.edge.openapi import (
    APP,
    JSON_OBJECT,
    Answer,
    Body,
    DocumentedRoute,
    Operation,
    Param,
    argument_parameters,
    build_document,
    docs_sections,
    report_parameters,
    schema_text,
)
from footfall.server.errors import BadRequest, Forbidden, UsageError
from footfall.server.ingest.protocols.framing import parse_json
from footfall.server.query.properties import ARGUMENT_REPORTS, report_json
from footfall.server.query.public import PublicPolicy, snapshot_folder
from footfall.server.query.reports import REPORTS


def api_routes(ctx: ServerContext) -> list[Route]:
    def admin_only(request: Request) -> Principal:
        principal = ctx.require(request)
        if not principal.admin:
            raise Forbidden("only an instance administrator may do this")
        return principal

    async def list_apps(request: Request) -> Response:
        principal = ctx.require(request)
        apps = await run_in_threadpool(ctx.operations.list_apps)
        return JSONResponse({"apps": [a for a in apps if principal.can_read(a["name"])]})

    async def add_app(request: Request) -> Response:
        principal = admin_only(request)
        document = parse_json(await ctx.read_body(request, ctx.settings.max_body_bytes))
        if not isinstance(document, dict) or not isinstance(document.get("name"), str):
            raise BadRequest('send {"name": "<app id>"}', code="invalid_request")
        ga_tids = document.get("ga_tids", [])
        if not isinstance(ga_tids, list) or not all(isinstance(t, str) for t in ga_tids):
            raise BadRequest("'ga_tids' must be a list of tracking ids", code="invalid_request")
        ga4 = _pairs(document, "ga4", "measurement_id")
        firebase = _pairs(document, "firebase", "app_id")
        influx = _influx_pairs(document)
        result = await run_in_threadpool(
            ctx.operations.add_app, document["name"], ga_tids, ga4, firebase, principal.email, influx
        )
        return JSONResponse(result, status_code=201 if result["created"] else 200)

    async def remove_app(request: Request) -> Response:
        # Admin only; the document marks it destructive, so the fuzz test given credentials leaves it alone.
        if not (principal := ctx.require(request)).admin:
            raise Forbidden("only an instance administrator may remove an app")
        app = request.path_params["app"]
        return JSONResponse(await run_in_threadpool(ctx.operations.remove_app, app, principal.email))

    async def put_schema(request: Request) -> Response:
        app = request.path_params["app"]
        if not (principal := ctx.require(request, app)).can_own(app):
            raise Forbidden("only an owner may change an app's schema")
        body = await ctx.read_body(request, ctx.settings.max_body_bytes)
        parse_json(body)  # a clean 400 for bad JSON before the schema's own checks
        schema = body.decode("utf-8", "replace")
        result = await run_in_threadpool(ctx.operations.set_schema, app, schema, principal.email)
        return JSONResponse(result)

    async def put_timezone(request: Request) -> Response:
        app = request.path_params["app"]
        if not (principal := ctx.require(request, app)).can_own(app):
            raise Forbidden("only an owner may change an app's time zone")
        document = parse_json(await ctx.read_body(request, ctx.settings.max_body_bytes))
        if not isinstance(document, dict) or not isinstance(document.get("timezone"), str):
            raise BadRequest('send {"timezone": "<IANA name such as Europe/Berlin>"}', code="invalid_request")
        try:
            result = await run_in_threadpool(ctx.operations.set_timezone, app, document["timezone"], principal.email)
        except UsageError as exc:
            raise BadRequest(exc.message, code="invalid_request") from None
        return JSONResponse(result)

    async def app_summary(request: Request) -> Response:
        app = request.path_params["app"]
        ctx.require(request, app)
        try:  # every filter a report takes applies to the summary too
            summary = await run_in_threadpool(ctx.operations.summary, app, 30, request.query_params)
        except UsageError as exc:
            raise BadRequest(exc.message, code="invalid_request") from None
        return JSONResponse(summary)

    async def serve_report(request: Request, name: str, as_csv: bool) -> Response:
        """A named report, or one that takes arguments (properties, compare), as JSON or CSV."""
        app = request.path_params["app"]
        principal = ctx.require(request, app)
        filters = ctx.operations.filters(app, request.query_params)
        if name in ARGUMENT_REPORTS:
            result = await run_in_threadpool(ctx.operations.argument_report, app, name, filters, request.query_params)
        else:
            result = await run_in_threadpool(ctx.operations.run_report, app, name, filters)
        if as_csv:
            await run_in_threadpool(ctx.accounts.audit, principal.email, "export", app, name)
            filename = f"{app}-{name}-{filters.start}-{filters.end}.csv"
            return Response(
                result.as_csv(),
                media_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{filename}"'},
            )
        return JSONResponse(report_json(result, app, filters))

    async def app_report(request: Request) -> Response:
        name = request.path_params["name"]
        as_csv = name.endswith(".csv") or request.query_params.get("format") == "csv"
        return await serve_report(request, name.removesuffix(".csv"), as_csv)

    async def properties_report(request: Request) -> Response:
        return await serve_report(request, "properties", request.query_params.get("format") == "csv")

    async def compare_report(request: Request) -> Response:
        return await serve_report(request, "compare", request.query_params.get("format") == "csv")

    async def property_names(request: Request) -> Response:
        app = request.path_params["app"]
        ctx.require(request, app)
        filters = ctx.operations.filters(app, request.query_params)
        return JSONResponse(await run_in_threadpool(ctx.operations.property_names, app, filters))

    async def public_preview(request: Request) -> Response:
        app = request.path_params["app"]
        if not ctx.require(request, app).can_own(app):
            raise Forbidden("only an owner may publish an app's aggregates")
        # The very snapshot the public page serves today (stored on first use), not a fresh draw.
        data = await run_in_threadpool(
            ctx.operations.public_snapshot,
            app,
            PublicPolicy.from_settings(ctx.settings),
            snapshot_folder(ctx.settings.data),
        )
        return JSONResponse(data)

    published: dict[str, bytes] = {}  # the routes are fixed once the app is built: render each once

    async def openapi(request: Request) -> Response:
        if "json" not in published:
            published["json"] = bytes(JSONResponse(build_document(request.app.routes)).body)
        return Response(published["json"], media_type="application/json")

    async def docs(request: Request) -> Response:
        if "html" not in published:
            document = build_document(request.app.routes)
            schemas = [(name, schema_text(schema)) for name, schema in document["components"]["schemas"].items()]
            page = dashboard.render("docs.html", title="API", sections=docs_sections(document), schemas=schemas)
            published["html"] = page.encode()
        return HTMLResponse(published["html"])

    return [
        DocumentedRoute("/api/v1/apps", list_apps, {"GET": LIST_APPS}),
        DocumentedRoute("/api/v1/apps", add_app, {"POST": ADD_APP}),
        DocumentedRoute("/api/v1/apps/{app}", remove_app, {"DELETE": REMOVE_APP}),
        DocumentedRoute("/api/v1/apps/{app}/schema", put_schema, {"PUT": PUT_SCHEMA}),
        DocumentedRoute("/api/v1/apps/{app}/timezone", put_timezone, {"PUT": PUT_TIMEZONE}),
        DocumentedRoute("/api/v1/apps/{app}/summary", app_summary, {"GET": SUMMARY}),
        DocumentedRoute("/api/v1/apps/{app}/reports/{name}", app_report, {"GET": REPORT}),
        DocumentedRoute("/api/v1/apps/{app}/properties", properties_report, {"GET": PROPERTIES}),
        DocumentedRoute("/api/v1/apps/{app}/properties/names", property_names, {"GET": PROPERTY_NAMES}),
        DocumentedRoute("/api/v1/apps/{app}/compare", compare_report, {"GET": COMPARE}),
        DocumentedRoute("/api/v1/apps/{app}/public", public_preview, {"GET": PUBLIC_PREVIEW}),
        DocumentedRoute("/openapi.json", openapi, {"GET": OPENAPI}),
        Route("/docs", docs, methods=["GET"]),
    ]


def _pairs(document: dict[str, Any], field: str, key: str) -> list[tuple[str, str]]:
    entries = document.get(field, [])
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get(key), str) and isinstance(e.get("api_secret"), str) for e in entries
    ):
        raise BadRequest(f"'{field}' must be a list of {{{key}, api_secret}}", code="invalid_request")
    return [(e[key], e["api_secret"]) for e in entries]


def _influx_pairs(document: dict[str, Any]) -> list[tuple[str, str]]:
    entries = document.get("influx", [])
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("token"), str) and isinstance(e.get("bucket", "*"), str)
        for e in entries
    ):
        raise BadRequest("'influx' must be a list of {token, bucket}", code="invalid_request")
    return [(e["token"], e.get("bucket", "*")) for e in entries]


# -- what /openapi.json says about each route (see edge/openapi.py) ----------------

REPORT_NAMES = sorted([*REPORTS, *ARGUMENT_REPORTS])
APP_ANSWER = {"type": "object", "properties": {"app": {"type": "string"}}}
KEY_PAIR = {
    "type": "object",
    "required": ["api_secret"],
    "properties": {
        "measurement_id": {"type": "string"},
        "app_id": {"type": "string"},
        "api_secret": {"type": "string"},
    },
}
REPORT_ANSWERS = {
    200: Answer("the report as JSON (or as CSV with format=csv)", "application/json", JSON_OBJECT),
}

LIST_APPS = Operation(
    "List the apps the caller may read",
    "api",
    {200: Answer("the apps", "application/json", {"type": "object", "properties": {"apps": {"type": "array"}}})},
    access="token",
    errors=(401,),
)
ADD_APP = Operation(
    "Register an app (and its GA tracking ids, GA4 and Firebase keys)",
    "api",
    {
        200: Answer("the app was already registered; its keys are added", "application/json", JSON_OBJECT),
        201: Answer("the app is registered", "application/json", JSON_OBJECT),
    },
    access="admin",
    body=Body(
        {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "example": "mdlint"},
                "ga_tids": {"type": "array", "items": {"type": "string"}, "example": ["UA-12345-1"]},
                "ga4": {"type": "array", "items": KEY_PAIR},
                "firebase": {"type": "array", "items": KEY_PAIR},
                "influx": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["token"],
                        "properties": {"token": {"type": "string"}, "bucket": {"type": "string"}},
                    },
                },
            },
        }
    ),
    errors=(400, 401, 403, 408, 413),
)
REMOVE_APP = Operation(
    "Remove an app and all its events",
    "api",
    {200: Answer("what was removed", "application/json", JSON_OBJECT)},
    access="admin",
    description="Deletes every event of the app, for good.",
    parameters=(APP,),
    errors=(401, 403, 404),
    destructive=True,
)
PUT_SCHEMA = Operation(
    "Set the app's event schema",
    "api",
    {200: Answer("the schema as stored", "application/json", JSON_OBJECT)},
    access="owner",
    description="The schema names each event and its properties; it feeds the property pickers.",
    parameters=(APP,),
    body=Body(JSON_OBJECT, description="the app's event schema (JSON)"),
    errors=(400, 401, 403, 404, 408, 413),
)
PUT_TIMEZONE = Operation(
    "Set the app's time zone (where its days start)",
    "api",
    {200: Answer("the app's new time zone", "application/json", JSON_OBJECT)},
    access="owner",
    parameters=(APP,),
    body=Body(
        {
            "type": "object",
            "required": ["timezone"],
            "properties": {"timezone": {"type": "string", "example": "Europe/Berlin"}},
        }
    ),
    errors=(400, 401, 403, 404, 408, 413),
)
SUMMARY = Operation(
    "Totals and top events of an app",
    "api",
    {200: Answer("totals and top events", "application/json", JSON_OBJECT)},
    access="token",
    parameters=report_parameters(csv=False),
    errors=(400, 401, 403, 404),
)
REPORT = Operation(
    "A named report",
    "api",
    REPORT_ANSWERS,
    access="token",
    description="As JSON, or as CSV with a .csv name or format=csv. Argument reports take their arguments too.",
    parameters=report_parameters(
        Param(
            "name",
            "the report; a .csv suffix asks for CSV",
            {"type": "string", "enum": [*REPORT_NAMES, *(f"{name}.csv" for name in REPORT_NAMES)]},
            location="path",
        ),
        *argument_parameters(
            dict(pair for entry in ARGUMENT_REPORTS.values() for pair in entry.arguments).items(), required=False
        ),
    ),
    errors=(400, 401, 403, 404),
)
PROPERTIES = Operation(
    "The values of one property of one event",
    "api",
    REPORT_ANSWERS,
    access="token",
    description="Events and installs per value; numbers as a histogram and quantiles.",
    parameters=report_parameters(*argument_parameters(ARGUMENT_REPORTS["properties"].arguments)),
    errors=(400, 401, 403, 404),
)
PROPERTY_NAMES = Operation(
    "Each event and its property names (the pickers)",
    "api",
    {200: Answer("events and their properties, from the schema or else the data", "application/json", JSON_OBJECT)},
    access="token",
    parameters=report_parameters(csv=False),
    errors=(400, 401, 403, 404),
)
COMPARE = Operation(
    "Two versions side by side",
    "api",
    REPORT_ANSWERS,
    access="token",
    description="Commands, options, outcomes and platforms of versions a and b, as shares.",
    parameters=report_parameters(*argument_parameters(ARGUMENT_REPORTS["compare"].arguments)),
    errors=(400, 401, 403, 404),
)
PUBLIC_PREVIEW = Operation(
    "The app's public aggregates, as the public page serves them today",
    "api",
    {200: Answer("today's public snapshot (noised, thresholded)", "application/json", JSON_OBJECT)},
    access="owner",
    parameters=(APP,),
    errors=(401, 403, 404),
)
OPENAPI = Operation(
    "This document",
    "operations",
    {200: Answer("the OpenAPI document; /docs renders it for people", "application/json", JSON_OBJECT)},
)
