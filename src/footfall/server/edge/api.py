"""The maintainers' JSON API under /api/v1, behind the admin token or a session,
and the OpenAPI document (`/openapi.json`) that describes every public endpoint.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from footfall.server.auth.accounts import Principal
from footfall.server.edge.context import ServerContext
from footfall.server.errors import BadRequest, Forbidden, UsageError
from footfall.server.ingest.protocols.framing import parse_json
from footfall.server.query.filters import MAX_PROPERTY_FILTERS
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
        result = await run_in_threadpool(
            ctx.operations.add_app, document["name"], ga_tids, ga4, firebase, principal.email
        )
        return JSONResponse(result, status_code=201 if result["created"] else 200)

    async def remove_app(request: Request) -> Response:
        # Admin only, and not in the OpenAPI document: fuzzers given credentials must not find it.
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

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    return [
        Route("/api/v1/apps", list_apps, methods=["GET"]),
        Route("/api/v1/apps", add_app, methods=["POST"]),
        Route("/api/v1/apps/{app}", remove_app, methods=["DELETE"]),
        Route("/api/v1/apps/{app}/schema", put_schema, methods=["PUT"]),
        Route("/api/v1/apps/{app}/timezone", put_timezone, methods=["PUT"]),
        Route("/api/v1/apps/{app}/summary", app_summary, methods=["GET"]),
        Route("/api/v1/apps/{app}/reports/{name}", app_report, methods=["GET"]),
        Route("/api/v1/apps/{app}/properties", properties_report, methods=["GET"]),
        Route("/api/v1/apps/{app}/properties/names", property_names, methods=["GET"]),
        Route("/api/v1/apps/{app}/compare", compare_report, methods=["GET"]),
        Route("/api/v1/apps/{app}/public", public_preview, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]


def _pairs(document: dict[str, Any], field: str, key: str) -> list[tuple[str, str]]:
    entries = document.get(field, [])
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get(key), str) and isinstance(e.get("api_secret"), str) for e in entries
    ):
        raise BadRequest(f"'{field}' must be a list of {{{key}, api_secret}}", code="invalid_request")
    return [(e[key], e["api_secret"]) for e in entries]


ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for s in statuses
    }


FILTER_PARAMETERS = ("days", "start", "end", "version", "country", "ci", "container", "format")
ARGUMENT_NAMES = ("event", "property", "a", "b")


def _required(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": True, "description": description, "schema": {"type": "string"}}


def _optional(*names: str) -> list[dict[str, Any]]:
    return [{"name": p, "in": "query", "schema": {"type": "string"}} for p in names]


def _report_operation(description: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """A GET under /api/v1/apps/{app}: the filters, and `where` (event.property=value, repeatable)."""
    return {
        "security": [{"bearer": []}],
        "parameters": [
            {"name": "app", "in": "path", "required": True, "schema": {"type": "string"}},
            *parameters,
            *_optional(*FILTER_PARAMETERS),
            {
                "name": "where",
                "in": "query",
                "description": "a property filter event.property=value, e.g. export.format=csv; repeatable",
                "style": "form",
                "explode": True,
                "schema": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_PROPERTY_FILTERS},
            },
        ],
        "responses": {"200": {"description": description}, **_errors(400, 401, 403, 404)},
    }


def openapi_document() -> dict[str, Any]:
    """The public HTTP contract; contract/native-v1.md has the prose."""
    names = sorted([*REPORTS, *ARGUMENT_REPORTS])
    native_body = {"$ref": "#/components/schemas/Batch"}
    form = {"application/x-www-form-urlencoded": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Footfall collector", "version": "1"},
        "paths": {
            "/healthz": {"get": {"responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    }
                }
            },
            "/v1/batch": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": native_body}},
                    },
                    "responses": {
                        "202": {"description": "per-event results"},
                        **_errors(400, 408, 413, 422, 429, 503),
                    },
                }
            },
            "/v1/forget": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "app": {"type": "string"},
                                        "install": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": (
                                'accepted: always {"status": "accepted"}, whether anything was kept'
                                " (200, not 202, so that every released SDK reads it as success)"
                            ),
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"status": {"type": "string", "enum": ["accepted"]}},
                                        "required": ["status"],
                                        "additionalProperties": False,
                                    }
                                }
                            },
                        },
                        **_errors(400, 408, 413, 429, 503),
                    },
                }
            },
            "/collect": {
                "get": {
                    "parameters": [
                        {"name": p, "in": "query", "schema": {"type": "string"}}
                        for p in ("v", "tid", "cid", "t", "ec", "ea", "el", "ev", "an", "av")
                    ],
                    "responses": {"200": {"description": "always, as GA"}},
                },
                "post": {
                    "requestBody": {"content": form},
                    "responses": {"200": {"description": "always, as GA"}},
                },
            },
            "/batch": {
                "post": {
                    "requestBody": {"content": form},
                    "responses": {"200": {"description": "always"}},
                }
            },
            "/debug/collect": {
                "post": {
                    "requestBody": {"content": form},
                    "responses": {"200": {"description": "hitParsingResult"}},
                }
            },
            "/mp/collect": {
                "post": {
                    "parameters": [
                        {"name": p, "in": "query", "schema": {"type": "string"}}
                        for p in ("measurement_id", "api_secret", "firebase_app_id")
                    ],
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"204": {"description": "always, as GA4"}},
                }
            },
            "/api/v1/apps": {
                "get": {
                    "security": [{"bearer": []}],
                    "responses": {"200": {"description": "apps"}, **_errors(401)},
                }
            },
            "/api/v1/apps/{app}/timezone": {
                "put": {
                    "security": [{"bearer": []}],
                    "parameters": [{"name": "app", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["timezone"],
                                    "properties": {"timezone": {"type": "string", "example": "Europe/Berlin"}},
                                }
                            }
                        }
                    },
                    "responses": {"200": {"description": "the app's new time zone"}, **_errors(400, 401, 403, 404)},
                }
            },
            "/api/v1/apps/{app}/summary": {
                "get": {
                    "security": [{"bearer": []}],
                    "parameters": [
                        {"name": "app", "in": "path", "required": True, "schema": {"type": "string"}},
                        *_optional("days"),
                    ],
                    "responses": {"200": {"description": "totals and top events"}, **_errors(400, 401, 403, 404)},
                }
            },
            "/api/v1/apps/{app}/reports/{name}": {
                "get": _report_operation(
                    "a named report as JSON, or CSV (properties and compare take their arguments too)",
                    [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": [*names, *(f"{r}.csv" for r in names)]},
                        },
                        *_optional(*ARGUMENT_NAMES),
                    ],
                )
            },
            "/api/v1/apps/{app}/properties": {
                "get": _report_operation(
                    "the values of one property of one event (events, installs; numbers as a histogram and"
                    " quantiles), as JSON or CSV",
                    [_required("event", "an event name, e.g. export"), _required("property", "e.g. format")],
                )
            },
            "/api/v1/apps/{app}/properties/names": {
                "get": _report_operation(
                    "the pickers: each event and its property names, from the schema or else the data", []
                )
            },
            "/api/v1/apps/{app}/compare": {
                "get": _report_operation(
                    "versions a and b side by side: commands, options, outcomes and platforms as shares",
                    [_required("a", "a version, e.g. 1.2"), _required("b", "another version, e.g. 1.3")],
                )
            },
            "/debug/mp/collect": {
                "post": {
                    "parameters": [{"name": "measurement_id", "in": "query", "schema": {"type": "string"}}],
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"200": {"description": "validationMessages"}},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": ERROR,
                "Batch": json.loads(BATCH_SCHEMA),
            },
        },
    }


BATCH_SCHEMA = """{
  "type": "object",
  "required": ["app", "context", "events"],
  "properties": {
    "app": {"type": "string"},
    "dropped": {"type": "integer", "minimum": 0},
    "context": {"type": "object", "properties": {
      "install": {"type": "string", "nullable": true},
      "session": {"type": "string", "nullable": true},
      "app_version": {"type": "string"},
      "platform": {"type": "object", "additionalProperties": {"type": "string"}},
      "environment": {"type": "object", "additionalProperties": {"type": "string"}}}},
    "events": {"type": "array", "items": {"type": "object", "required": ["name", "time"],
      "properties": {"name": {"type": "string"}, "time": {"type": "string"},
                     "props": {"type": "object"}}}}
  }
}"""
