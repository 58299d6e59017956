"""The OpenAPI document (`/openapi.json`) and its page for humans (`/docs`), generated from the routes.

Every route of the JSON API, the collector and the operations endpoints is a `DocumentedRoute`:
a Starlette `Route` that carries one `Operation` per method, declared next to the route. The
document is built by walking the app's routes, so it cannot drift from them; a route that is
neither documented nor in `NOT_API` (the dashboard's HTML pages, with the reason) fails
`undocumented()`, which a test keeps empty.

The filter parameters every report takes are declared once here (`FILTER_PARAMETERS`), from the
constants `Filters.from_params` checks against; report names come from `reports.REPORTS` and the
argument reports of `query.properties`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from starlette.routing import BaseRoute, Route

from footfall.server.query.filters import CI_CHOICES, CONTAINERS, MAX_DAYS, MAX_PROPERTY_FILTERS

OPENAPI_VERSION = "3.0.3"
Group = Literal["collector", "api", "operations"]
GROUPS: dict[Group, str] = {
    "collector": "Collector: the endpoints SDKs and GA clients send events to",
    "api": "API: reports and app management, with a bearer token",
    "operations": "Operations: health, readiness, metrics and this document",
}
Access = Literal["anyone", "token", "owner", "admin", "local-admin"]
ACCESS: dict[Access, str] = {
    "anyone": "no credentials",
    "token": "a bearer token (or a session) that may read the app",
    "owner": "a bearer token of an owner of the app (or an administrator)",
    "admin": "admin only: a token of an instance administrator",
    "local-admin": "admin only: the local admin token in DIR/secrets.json, nothing else",
}
ERROR_STATUSES: dict[int, str] = {
    400: "the request is malformed or a value is out of range",
    401: "no credentials, or they are not valid",
    403: "the credentials may not do this",
    404: "no such app",
    408: "the body arrived too slowly",
    413: "the body is too large",
    422: "the batch does not follow the protocol",
    429: "too many requests: wait for Retry-After seconds",
    503: "the server cannot keep anything now (backpressure or store down): retry later",
}

# The dashboard's HTML pages and its assets are not part of the API: path -> why not.
NOT_API: dict[str, str] = {
    "/": "dashboard HTML page (the app picker)",
    "/login": "dashboard HTML page and its form",
    "/logout": "dashboard form post",
    "/apps/{app}": "dashboard HTML page (an app's reports)",
    "/apps/{app}/public": "dashboard form post (sharing settings)",
    "/apps/{app}/timezone": "dashboard form post (PUT /api/v1/apps/{app}/timezone is its API)",
    "/public/{app}": "public HTML page (GET /api/v1/apps/{app}/public is its JSON)",
    "/admin/audit": "dashboard HTML page (the audit log)",
    "/account": "dashboard HTML page (tokens and password)",
    "/account/tokens/{token}/revoke": "dashboard form post",
    "/static/{name}": "the dashboard's stylesheet",
    "/docs": "this document rendered as HTML for people",
}
IMPLICIT_METHODS = frozenset({"HEAD"})  # Starlette adds HEAD to every GET route; it is not documented


@dataclasses.dataclass(frozen=True)
class Param:
    """A query or path parameter; `repeatable` makes it an array sent as `name=a&name=b`."""

    name: str
    description: str = ""
    schema: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"type": "string"})
    location: Literal["query", "path"] = "query"
    required: bool = False
    repeatable: bool = False
    max_items: int | None = None  # of a repeatable parameter

    def as_openapi(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "in": self.location, "required": self.required}
        if self.location == "path":
            entry["required"] = True
        if self.description:
            entry["description"] = self.description
        if self.repeatable:
            array: dict[str, Any] = {"type": "array", "items": dict(self.schema)}
            if self.max_items is not None:
                array["maxItems"] = self.max_items
            entry.update(style="form", explode=True, schema=array)
        else:
            entry["schema"] = dict(self.schema)
        return entry


@dataclasses.dataclass(frozen=True)
class Body:
    schema: Mapping[str, Any]
    media_type: str = "application/json"
    description: str = ""
    required: bool = True

    def as_openapi(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"required": self.required, "content": {self.media_type: {"schema": dict(self.schema)}}}
        if self.description:
            entry["description"] = self.description
        return entry


@dataclasses.dataclass(frozen=True)
class Answer:
    """A success response: its description, and its body's media type and schema if it has one."""

    description: str
    media_type: str = ""
    schema: Mapping[str, Any] | None = None

    def as_openapi(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"description": self.description}
        if self.media_type:
            entry["content"] = {self.media_type: {"schema": dict(self.schema or {})}}
        return entry


@dataclasses.dataclass(frozen=True)
class Operation:
    """What the document says about one method of one route.

    `errors` are statuses answered with the shared error shape; `destructive` marks an
    operation a fuzzer given credentials must not call (`x-footfall-destructive`).
    """

    summary: str
    group: Group
    answers: Mapping[int, Answer]
    access: Access = "anyone"
    description: str = ""
    parameters: Sequence[Param] = ()
    body: Body | None = None
    errors: Sequence[int] = ()
    destructive: bool = False

    def as_openapi(self, operation_id: str) -> dict[str, Any]:
        description = " ".join(part for part in (self.description, f"Access: {ACCESS[self.access]}.") if part)
        entry: dict[str, Any] = {
            "operationId": operation_id,
            "summary": self.summary,
            "description": description,
            "tags": [self.group],
            "x-footfall-access": self.access,
        }
        if self.destructive:
            entry["x-footfall-destructive"] = True
        if self.access != "anyone":
            entry["security"] = [{"bearer": []}]
        if self.parameters:
            entry["parameters"] = [p.as_openapi() for p in self.parameters]
        if self.body is not None:
            entry["requestBody"] = self.body.as_openapi()
        responses: dict[str, Any] = {str(status): answer.as_openapi() for status, answer in self.answers.items()}
        for status in self.errors:
            responses[str(status)] = {
                "description": ERROR_STATUSES[status],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        entry["responses"] = dict(sorted(responses.items()))
        return entry


class DocumentedRoute(Route):
    """A `Route` that declares its operations: the methods it answers are the ones it documents."""

    def __init__(self, path: str, endpoint: Callable[..., Any], operations: Mapping[str, Operation]) -> None:
        super().__init__(path, endpoint, methods=list(operations))
        self.operations = {method.upper(): operation for method, operation in operations.items()}


# -------------------------------------------------------------------------- shared parts

ERROR_SCHEMA: dict[str, Any] = {
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
JSON_OBJECT: dict[str, Any] = {"type": "object"}
APP = Param("app", "the app's id, e.g. mdlint", location="path")
FORMAT = Param("format", "csv for a CSV download instead of JSON", {"type": "string", "enum": ["json", "csv"]})

# The filters of every report, in one place: `Filters.from_params` checks the same constants.
DATE = {"type": "string", "format": "date"}
DAYS = {"type": "integer", "minimum": 1, "maximum": MAX_DAYS}
FILTER_PARAMETERS: tuple[Param, ...] = (
    Param("days", "the range's length in days, up to end (default 30)", DAYS),
    Param("start", "the first day (YYYY-MM-DD, in the app's time zone); overrides days", DATE),
    Param("end", "the last day, inclusive (default today)", DATE),
    Param("version", "only events of this app version, e.g. 1.4.2", {"type": "string", "pattern": r"^[\w.+-]{1,64}$"}),
    Param("country", "only events from this country, e.g. DE", {"type": "string", "pattern": "^[A-Za-z]{2}$"}),
    Param("ci", "whether to count runs on CI", {"type": "string", "enum": list(CI_CHOICES)}),
    Param("container", "only runs in this kind of container", {"type": "string", "enum": list(CONTAINERS)}),
    Param(
        "where",
        f"a property filter event.property=value, e.g. export.format=csv; repeatable, at most {MAX_PROPERTY_FILTERS}",
        {"type": "string"},
        repeatable=True,
        max_items=MAX_PROPERTY_FILTERS,
    ),
)  # fmt: skip


def report_parameters(*extra: Param, csv: bool = True) -> tuple[Param, ...]:
    """A report route's parameters: the app, `extra`, the filters and (for CSV) `format`."""
    return (APP, *extra, *FILTER_PARAMETERS, *((FORMAT,) if csv else ()))


def argument_parameters(arguments: Iterable[tuple[str, str]], required: bool = True) -> tuple[Param, ...]:
    """The (name, help) arguments of an argument report (see `query.properties.ArgumentReport`)."""
    return tuple(Param(name, help_text, required=required) for name, help_text in arguments)


# The operations endpoints `create_app` itself serves (edge/app.py).
HEALTHZ = Operation(
    "Liveness: the process answers", "operations", {200: Answer("alive", "application/json", JSON_OBJECT)}
)
READYZ = Operation(
    "Readiness: the store answers and the ingest log is not past its caps",
    "operations",
    {
        200: Answer("ready, with warnings an operator should read", "application/json", JSON_OBJECT),
        503: Answer("not ready, with the problems", "application/json", JSON_OBJECT),
    },
)
METRICS = Operation(
    "Prometheus metrics",
    "operations",
    {200: Answer("the text exposition format", "text/plain", {"type": "string"})},
)


# -------------------------------------------------------------------------- the document


def documented_operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str, Operation]]:
    """(path, method, operation) of every documented route, in the app's order."""
    return [
        (route.path, method, operation)
        for route in routes
        if isinstance(route, DocumentedRoute)
        for method, operation in route.operations.items()
    ]


def undocumented(routes: Iterable[BaseRoute]) -> list[str]:
    """`METHOD path` of every route neither documented nor in `NOT_API`: a test keeps this empty."""
    missing: list[str] = []
    for route in routes:
        path = getattr(route, "path", repr(route))
        if path in NOT_API:
            continue
        methods = set(getattr(route, "methods", None) or {"GET"}) - IMPLICIT_METHODS
        declared = set(route.operations) if isinstance(route, DocumentedRoute) else set()
        missing.extend(f"{method} {path}" for method in sorted(methods - declared))
    return missing


def _operation_id(method: str, path: str) -> str:
    words = [part.strip("{}") for part in path.replace(".", "_").split("/") if part]
    return "_".join([method.lower(), *words]).replace("-", "_") or method.lower()


def build_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of the documented routes."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method, operation in documented_operations(routes):
        paths.setdefault(path, {})[method.lower()] = operation.as_openapi(_operation_id(method, path))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Footfall collector",
            "version": "1",
            "description": "Anonymous, aggregate usage analytics. contract/native-v1.md describes the native protocol.",
        },
        "tags": [{"name": group, "description": text} for group, text in GROUPS.items()],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
    }


# -------------------------------------------------------------------------- /docs


def schema_text(schema: Mapping[str, Any]) -> str:
    """A schema as readable JSON: a reference to a shared schema is shown by its name."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and len(schema) == 1:
        return ref.rsplit("/", 1)[-1]
    return json.dumps(schema, indent=2)


def type_label(schema: Mapping[str, Any]) -> str:
    """A parameter's type in a few words: `include | exclude | only`, `integer 1..3660`, `date`, ..."""
    if "enum" in schema:
        return " | ".join(str(value) for value in schema["enum"])
    if schema.get("type") == "array":
        most = f", at most {schema['maxItems']}" if "maxItems" in schema else ""
        return f"repeatable {type_label(schema.get('items', {}))}{most}"
    if "format" in schema:
        return str(schema["format"])
    label = str(schema.get("type", "any"))
    if "minimum" in schema or "maximum" in schema:
        label += f" {schema.get('minimum', '')}..{schema.get('maximum', '')}"
    if "pattern" in schema:
        label += f" matching {schema['pattern']}"
    return label


def docs_sections(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The document's operations grouped by tag (collector, API, operations), for the template."""
    sections: list[dict[str, Any]] = [
        {"group": group, "title": title, "operations": []} for group, title in GROUPS.items()
    ]
    by_group = {section["group"]: section for section in sections}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            parameters = [
                {
                    "name": p["name"],
                    "location": p["in"],
                    "required": p.get("required", False),
                    "type": type_label(p["schema"]),
                    "description": p.get("description", ""),
                }
                for p in operation.get("parameters", [])
            ]
            body = operation.get("requestBody")
            bodies = [
                {"media_type": media, "schema": schema_text(content["schema"])}
                for media, content in (body["content"].items() if body else ())
            ]
            responses = [
                {
                    "status": status,
                    "description": answer["description"],
                    "content": [
                        {"media_type": media, "schema": schema_text(content["schema"]) if content["schema"] else ""}
                        for media, content in answer.get("content", {}).items()
                    ],
                }
                for status, answer in operation["responses"].items()
            ]
            by_group[operation["tags"][0]]["operations"].append(
                {
                    "id": operation["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "summary": operation["summary"],
                    "description": operation["description"],
                    "destructive": operation.get("x-footfall-destructive", False),
                    "parameters": parameters,
                    "bodies": bodies,
                    "responses": responses,
                }
            )
    return sections
