"""Every API answer is what the OpenAPI schema documents for it.

Schemathesis sends valid and invalid requests built from the schema /api/schema/ serves
(authenticated with an API token, as a clinician and as a reviewer) and checks each answer:
its status is documented for the operation, and its content type, headers and body match
the documented response. Each request with ids in its path is sent again with the ids of
rows that exist, so the answers for found objects are checked too, not only 404s. Bounded to
a few examples per operation and mode, so it stays fast.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.webapp.conftest import api_client
from tests.webapp.openapi import api_schema
from webapp.casework.apis import CaseListCreateApi
from webapp.lib.serializers import StrictInputSerializer
from webapp.scoring.models import Prediction

API_SCHEMA = api_schema(max_examples=12)

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def existing_ids(api_tokens):
    """Path ids of the clinician's scored image, which both roles may see."""
    prediction = Prediction.objects.select_related("image").get()
    return {
        "case_id": prediction.image.case_id,
        "image_id": prediction.image_id,
        "prediction_id": prediction.pk,
    }


@pytest.mark.parametrize("role", ["clinician", "reviewer"])
@API_SCHEMA.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_answer_matches_the_documented_response(case, role, api_tokens, existing_ids):
    headers = {"Authorization": f"Token {api_tokens[role]}"}
    case.validate_response(case.call(headers=headers), checks=CONFORMANCE)
    if case.path_parameters:
        case.path_parameters = {
            name: existing_ids.get(name, value) for name, value in case.path_parameters.items()
        }
        case.validate_response(case.call(headers=headers), checks=CONFORMANCE)


def _schema(client) -> dict:
    response = client.get(reverse("api-schema"), {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_schema_lists_the_values_ordering_accepts(clinician):
    paths = _schema(api_client(clinician))["paths"]
    ordering = next(
        parameter
        for parameter in paths["/api/v1/cases/"]["get"]["parameters"]
        if parameter["name"] == "ordering"
    )
    assert ordering["schema"]["items"]["enum"] == [
        "created_at",
        "-created_at",
        "top_probability",
        "-top_probability",
        "flagged_at",
        "-flagged_at",
    ]
    assert (ordering["style"], ordering["explode"]) == ("form", False)


def test_only_listing_images_is_paginated(clinician):
    images = _schema(api_client(clinician))["paths"]["/api/v1/cases/{case_id}/images/"]
    get_parameters = {parameter["name"] for parameter in images["get"]["parameters"]}
    post_parameters = {parameter["name"] for parameter in images["post"]["parameters"]}
    assert get_parameters == {"case_id", "page", "page_size"}
    assert post_parameters == {"case_id"}
    created = images["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["type"] == "array"


def test_the_schema_shows_no_docstring_written_for_developers(clinician):
    text = json.dumps(_schema(api_client(clinician)))
    for docstring in (StrictInputSerializer.__doc__, CaseListCreateApi.__doc__):
        first_line = (docstring or "").strip().splitlines()[0]
        assert first_line not in text
