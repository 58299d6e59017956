"""schemathesis against the published OpenAPI document: no input may cause a 5xx.

Driven through its Python API rather than its pytest plugin, which does not run
under pytest 9 (it reads a private pytest attribute that is gone). Requests carry
the admin token, so they reach the /api/v1 handlers rather than stopping at 401.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import GOLDEN_APP, InThreadServer

REPORTS_PATH = "/api/v1/apps/{app}/reports/{name}"


def test_no_input_causes_a_server_error(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(rate_per_client=0)  # fuzzing must not be throttled
    headers = {"Authorization": f"Bearer {server.token}"}
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    statuses: dict[str, set[int]] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            app = (case.path_parameters or {}).get("app")
            if isinstance(app, str) and len(app) % 2 == 0:
                case.path_parameters["app"] = GOLDEN_APP  # half the cases reach a registered app's report
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
            statuses.setdefault(case.operation.path, set()).add(response.status_code)

        check()
    reports = statuses[REPORTS_PATH]
    assert 200 in reports and 401 not in reports, reports  # the handlers ran, with fuzzed filters
    assert 400 in reports  # ... and refused the bad ones cleanly
