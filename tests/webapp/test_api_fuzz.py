"""Every API operation fuzzed from its own OpenAPI schema: never a server error.

Schemathesis generates valid and invalid requests (wrong types, missing and unknown fields,
out-of-range values, odd strings) from the schema drf-spectacular serves, and sends them
through the WSGI app as a clinician and as a reviewer. Bounded: 30 examples per operation
and mode, deterministic, well under two minutes in all.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.webapp.openapi import api_schema

API_SCHEMA = api_schema(max_examples=30)


@pytest.mark.parametrize("role", ["clinician", "reviewer"])
@API_SCHEMA.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_makes_a_server_error(case, role, api_tokens):
    response = case.call(headers={"Authorization": f"Token {api_tokens[role]}"})
    case.validate_response(response, checks=[not_a_server_error])
