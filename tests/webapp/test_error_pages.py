"""Refused, missing and failed pages keep the site's layout: its navigation and disclaimer."""

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from inference.disclaimer import DISCLAIMER
from tests.webapp.conftest import login
from tests.webapp.factories import CaseFactory
from webapp.lib.views import server_error_view


def assert_site_layout(text: str) -> None:
    assert DISCLAIMER in text
    assert 'class="topbar"' in text
    assert 'class="brand" href="/"' in text


@pytest.mark.django_db
def test_someone_elses_case_answers_404_in_the_site_layout(other_clinician):
    case = CaseFactory.create()
    response = login(other_clinician).get(reverse("cases:detail", args=[case.pk]))
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in response.text
    assert_site_layout(response.text)
    # The signed-in user keeps the navigation.
    assert f'href="{reverse("cases:list")}"' in response.text
    assert case.subject_ref not in response.text


@pytest.mark.django_db
def test_an_address_nothing_matches_answers_404_in_the_site_layout(clinician):
    response = login(clinician).get("/no-such-page/")
    assert response.status_code == 404
    assert_site_layout(response.text)


@pytest.mark.django_db
def test_a_page_the_role_does_not_allow_answers_403_in_the_site_layout(clinician):
    response = login(clinician).get(reverse("reviews:queue"))
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in response.text
    assert_site_layout(response.text)
    assert f'href="{reverse("cases:list")}"' in response.text


# The two below have no database: pytest-django refuses any query they would make.


def test_the_500_page_renders_without_a_request_or_the_database():
    text = render_to_string(
        "500.html", {"heading": "Server error", "message": "Nothing was saved."}
    )
    assert "<h1>Server error</h1>" in text
    assert 'class="brand" href="/"' in text


def test_the_server_error_handler_answers_in_the_site_layout_without_the_database():
    request = RequestFactory().get("/cases/")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        response = server_error_view(request)
    assert response.status_code == 500
    text = response.content.decode()
    assert "<h1>Server error</h1>" in text
    assert_site_layout(text)
