"""The OpenAPI document: generated from the routes, complete, valid, rendered at /docs, and fuzzed.

The fuzz test drives schemathesis through its Python API rather than its pytest plugin, which
does not run under pytest 9 (it reads a private pytest attribute that is gone). Requests carry
the admin token, so they reach the /api/v1 handlers rather than stopping at 401; operations the
document marks destructive (removing an app, writing a backup to a fuzzed path) are left out.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from footfall.server.edge.openapi import (
    FILTER_PARAMETERS,
    IMPLICIT_METHODS,
    NOT_API,
    DocumentedRoute,
    Operation,
    build_document,
    undocumented,
)
from footfall.server.query.properties import ARGUMENT_REPORTS
from footfall.server.query.reports import REPORTS
from tests.conftest import GOLDEN_APP, InThreadServer

REPORTS_PATH = "/api/v1/apps/{app}/reports/{name}"
ROUTING_404 = "Not Found"  # Starlette's detail for a path no route matches


def fetch(server: InThreadServer, path: str, method: str = "GET", token: str = "") -> tuple[int, bytes, Any]:
    request = urllib.request.Request(server.url + path, method=method, data=b"" if method != "GET" else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def document_of(server: InThreadServer) -> dict[str, Any]:
    status, body, _ = fetch(server, "/openapi.json")
    assert status == 200
    document: dict[str, Any] = json.loads(body)
    return document


def route_operations(routes: list[Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every route of the app, without the implicit HEAD."""
    return {
        (method, route.path)
        for route in routes
        for method in set(getattr(route, "methods", None) or {"GET"}) - IMPLICIT_METHODS
    }


def test_every_route_is_documented_or_excluded_and_every_documented_path_exists(app_server: InThreadServer) -> None:
    document = document_of(app_server)
    documented = {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}
    routes = route_operations(app_server.app.routes)
    api_routes = {(method, path) for method, path in routes if path not in NOT_API}
    assert undocumented(app_server.app.routes) == []
    assert api_routes == documented, (api_routes - documented, documented - api_routes)
    assert not {path for _, path in documented} & set(NOT_API), "a path is either documented or excluded"
    assert set(NOT_API) <= {path for _, path in routes}, "no stale exclusion"
    assert all(reason for reason in NOT_API.values())


def test_every_documented_operation_answers_on_its_path(app_server: InThreadServer) -> None:
    """Without credentials: each documented method and path reaches a handler (no routing 404 or 405)."""
    for path, methods in document_of(app_server)["paths"].items():
        concrete = path.replace("{app}", GOLDEN_APP).replace("{name}", "events")
        for method in methods:
            status, body, _ = fetch(app_server, concrete, method.upper())
            assert status != 405, (method, path)
            if status == 404:
                assert json.loads(body)["error"]["message"] != ROUTING_404, (method, path)


def test_the_issue_s_routes_are_in_the_document(app_server: InThreadServer) -> None:
    paths = document_of(app_server)["paths"]
    wanted = {
        ("post", "/api/v1/apps"),
        ("get", "/api/v1/apps/{app}/summary"),
        ("put", "/api/v1/apps/{app}/schema"),
        ("put", "/api/v1/apps/{app}/timezone"),
        ("get", "/api/v1/apps/{app}/public"),
        ("get", "/debug/collect"),
        ("post", "/debug/collect"),
        ("post", "/debug/mp/collect"),
        ("post", "/v1/batch"),
        ("post", "/v1/forget"),
        ("get", "/collect"),
        ("post", "/collect"),
        ("post", "/batch"),
        ("post", "/mp/collect"),
        ("post", "/api/v2/write"),
        ("post", "/write"),
        ("get", "/api/v1/apps/{app}/properties"),
        ("get", "/api/v1/apps/{app}/properties/names"),
        ("get", "/api/v1/apps/{app}/compare"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("delete", "/api/v1/apps/{app}"),
        ("post", "/api/v1/backup"),
    }
    missing = {(method, path) for method, path in wanted if method not in paths.get(path, {})}
    assert not missing, missing
    for method, path in (("delete", "/api/v1/apps/{app}"), ("post", "/api/v1/backup")):
        operation = paths[path][method]
        assert operation["x-footfall-destructive"] is True
        assert operation["x-footfall-access"] in ("admin", "local-admin")
        assert "admin only" in operation["description"]


def test_the_document_is_valid_openapi(app_server: InThreadServer) -> None:
    validate(document_of(app_server))  # raises on any violation of the OpenAPI 3.0 schema


def test_report_names_and_filters_come_from_one_place(app_server: InThreadServer) -> None:
    paths = document_of(app_server)["paths"]
    names = next(p for p in paths[REPORTS_PATH]["get"]["parameters"] if p["name"] == "name")["schema"]["enum"]
    every = {*REPORTS, *ARGUMENT_REPORTS}
    assert set(names) == every | {f"{name}.csv" for name in every}
    filters = {p.name for p in FILTER_PARAMETERS}
    assert filters == {"days", "start", "end", "version", "country", "ci", "container", "where"}
    for path in (REPORTS_PATH, "/api/v1/apps/{app}/properties", "/api/v1/apps/{app}/compare"):
        parameters = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        assert filters <= set(parameters), path
        assert parameters["where"]["schema"]["type"] == "array" and parameters["where"]["explode"] is True
        assert parameters["ci"]["schema"]["enum"] == ["include", "exclude", "only"]
    for name, entry in ARGUMENT_REPORTS.items():
        parameters = {p["name"]: p for p in paths[f"/api/v1/apps/{{app}}/{name}"]["get"]["parameters"]}
        assert all(parameters[argument]["required"] for argument, _ in entry.arguments), name


def test_a_route_without_a_declaration_is_caught() -> None:
    """A new route someone forgets to declare shows up in `undocumented`, which the test above keeps empty."""

    async def endpoint(request: Request) -> Response:
        return Response()

    declared = Operation("declared", "api", {})
    routes = [
        DocumentedRoute("/declared", endpoint, {"GET": declared}),
        Route("/forgotten", endpoint, methods=["GET", "POST"]),
        Route("/login", endpoint),  # excluded: an HTML page
    ]
    assert undocumented(routes) == ["GET /forgotten", "POST /forgotten"]
    assert set(build_document(routes)["paths"]) == {"/declared"}


def test_docs_renders_every_operation_on_the_server(app_server: InThreadServer) -> None:
    status, body, headers = fetch(app_server, "/docs")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert (
        "script-src" not in headers["Content-Security-Policy"]
        and "default-src 'none'" in headers["Content-Security-Policy"]
    ), "the site's CSP, unrelaxed: the page needs no script"
    page = body.decode()
    assert "<script" not in page and "//cdn" not in page
    assert "repeatable string, at most 5" in page and "integer 1..3660" in page, "types are spelled out"
    for path, methods in document_of(app_server)["paths"].items():
        for method in methods:
            assert f'data-method="{method.upper()}" data-path="{path}"' in page, (method, path)


@pytest.mark.timeout(900)
def test_no_input_causes_a_server_error(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(rate_per_client=0)  # fuzzing must not be throttled
    headers = {"Authorization": f"Bearer {server.token}"}
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [op for op in operations if not op.definition.raw.get("x-footfall-destructive")]
    left_out = {(op.method.upper(), op.path) for op in operations} - {(op.method.upper(), op.path) for op in fuzzed}
    assert left_out == {("DELETE", "/api/v1/apps/{app}"), ("POST", "/api/v1/backup")}
    statuses: dict[str, set[int]] = {}
    for operation in fuzzed:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            app = (case.path_parameters or {}).get("app")
            if isinstance(app, str) and len(app) % 2 == 0:
                case.path_parameters["app"] = GOLDEN_APP  # half the cases reach a registered app's report
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
            statuses.setdefault(case.operation.path, set()).add(response.status_code)

        check()
    assert server.store.has_app(GOLDEN_APP), "nothing destructive ran"
    reports = statuses[REPORTS_PATH]
    assert 200 in reports and 401 not in reports, reports  # the handlers ran, with fuzzed filters
    assert 400 in reports  # ... and refused the bad ones cleanly
