"""Every API operation fuzzed from its own OpenAPI schema: never a server error.

Schemathesis generates valid and invalid requests (wrong types, missing and unknown fields,
out-of-range values, odd strings) from the schema drf-spectacular serves, and sends them
through the WSGI app as a clinician and as a reviewer. Bounded: 30 examples per operation
and mode, deterministic, well under two minutes in all.
"""

from __future__ import annotations

import django
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from tests.webapp.factories import ClinicianFactory, PredictionFactory, ReviewerFactory

django.setup()


def _api_schema() -> schemathesis.schemas.BaseSchema:
    from drf_spectacular.generators import SchemaGenerator

    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = get_wsgi_application()
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=30,
        deterministic=True,
    )
    return schema


API_SCHEMA = _api_schema()


@pytest.fixture
def keep_test_connection():
    """Keep the WSGI app from closing the test's connection (and its transaction).

    Django's own test client does the same: `close_old_connections` runs at the start and
    end of every request, which would end the transaction this test's rows live in.
    """
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def tokens(db, keep_test_connection):
    clinician = ClinicianFactory.create()
    reviewer = ReviewerFactory.create()
    # Something to find: a scored image in the clinician's case, with low ids to guess.
    PredictionFactory.create(image__case__created_by=clinician, flagged=True)
    return {
        "clinician": Token.objects.create(user=clinician).key,
        "reviewer": Token.objects.create(user=reviewer).key,
    }


@pytest.mark.parametrize("role", ["clinician", "reviewer"])
@API_SCHEMA.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_makes_a_server_error(case, role, tokens):
    response = case.call(headers={"Authorization": f"Token {tokens[role]}"})
    case.validate_response(response, checks=[not_a_server_error])
