"""schemathesis against the published OpenAPI document: no input may cause a 5xx.

Driven through its Python API rather than its pytest plugin, which does not run
under pytest 9 (it reads a private pytest attribute that is gone).
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import InThreadServer


def test_no_input_causes_a_server_error(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(rate_per_client=0)  # fuzzing must not be throttled
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        check()
