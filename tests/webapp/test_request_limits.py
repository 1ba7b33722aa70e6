"""Requests past the parser's and Django's limits: a 4xx in the API's error format, saying why."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.webapp.conftest import api_client, login
from tests.webapp.factories import CaseFactory, jpeg_bytes
from webapp.cases.models import Case, Image

pytestmark = pytest.mark.django_db

NESTED = "[" * 1000


def _error(response) -> dict:
    assert response["Content-Type"] == "application/json", response.content[:200]
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


@pytest.mark.parametrize("body", [NESTED, NESTED + "]" * 1000, '{"a":' * 1000])
def test_deeply_nested_json_to_the_anonymous_token_endpoint_is_a_400(body):
    response = Client().post(reverse("api:token"), body, content_type="application/json")
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "parse_error"
    assert "nested too deeply" in error["message"]


@pytest.mark.parametrize("name", ["api:case-list", "api:review-list"])
def test_deeply_nested_json_to_any_json_endpoint_is_a_400(admin_user, name):
    response = api_client(admin_user).post(reverse(name), NESTED, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in _error(response)["message"]


def test_fifty_one_files_are_refused_with_the_limit(clinician):
    case = CaseFactory.create(created_by=clinician)
    files = [SimpleUploadedFile(f"{n}.jpg", jpeg_bytes(), "image/jpeg") for n in range(51)]
    response = api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"files": files}, format="multipart"
    )
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "too_many_files"
    assert "At most 50 files" in error["message"]
    assert not Image.objects.exists()


def test_too_many_fields_are_refused_with_the_limit(clinician):
    fields = {f"field{n}": "x" for n in range(1100)}
    response = api_client(clinician).post(reverse("api:case-list"), fields, format="multipart")
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "too_many_fields"
    assert "At most 1000 fields" in error["message"]


def test_a_body_over_the_size_limit_is_refused_with_the_limit(clinician):
    body = json.dumps(
        {"subject_ref": "S", "body_site": "trunk_anterior", "notes": "n" * 51 * 1024 * 1024}
    )
    response = api_client(clinician).post(
        reverse("api:case-list"), body, content_type="application/json"
    )
    assert response.status_code == 413, response.content[:300]
    error = _error(response)
    assert error["code"] == "request_too_large"
    assert "50 MB limit" in error["message"]
    assert not Case.objects.exists()


def test_a_browser_upload_past_the_limits_says_which_limit(clinician):
    case = CaseFactory.create(created_by=clinician)
    files = [SimpleUploadedFile(f"{n}.jpg", jpeg_bytes(), "image/jpeg") for n in range(51)]
    response = login(clinician).post(reverse("cases:upload", args=[case.pk]), {"images": files})
    assert response.status_code == 400
    assert "At most 50 files" in response.content.decode()
    assert not Image.objects.exists()
