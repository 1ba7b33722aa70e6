"""Field validation in forms and the API: lengths, enums, dates, unknown fields, wrong types.

Every bad value gets a 400 that names the field, and nothing is stored.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.webapp.conftest import api_client, login
from tests.webapp.factories import CaseFactory, jpeg_bytes
from webapp.cases.models import Case, Image
from webapp.reviews.models import Review

pytestmark = pytest.mark.django_db

GOOD_CASE = {"subject_ref": "SUBJ-1", "body_site": "trunk_anterior", "notes": ""}

BAD_CASES = [
    ("subject_ref", "x" * 65, "max_length"),
    ("subject_ref", "", "blank"),
    ("subject_ref", "   ", "blank"),
    ("subject_ref", "a\x00b", "null_characters_not_allowed"),
    ("subject_ref", ["a", "b"], "invalid"),
    ("subject_ref", {"a": 1}, "invalid"),
    ("subject_ref", None, "null"),
    ("body_site", "elbow", "invalid_choice"),
    ("body_site", "", "invalid_choice"),
    ("body_site", 3, "invalid_choice"),
    ("body_site", ["trunk_anterior"], "invalid_choice"),
    ("notes", "n" * 5001, "max_length"),
    ("notes", 12.5, "invalid"),  # text fields take strings only, not numbers made text
    ("subject_ref", 7, "invalid"),
    ("unexpected", "value", "unknown"),
    ("subjectref", "typo of a field", "unknown"),
]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    BAD_CASES,
    ids=[f"{f}-{c}-{i}" for i, (f, _, c) in enumerate(BAD_CASES)],
)
def test_the_api_validates_every_case_field(clinician, field, value, code):
    payload = {**GOOD_CASE, field: value}
    response = api_client(clinician).post(reverse("api:case-list"), payload, format="json")
    if code is None:
        assert response.status_code == 201
        return
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["details"]
    assert not Case.objects.exists()


def test_the_api_refuses_a_body_that_is_not_an_object(clinician):
    client = api_client(clinician)
    for body in ([GOOD_CASE], "text", 12, None):
        response = client.post(reverse("api:case-list"), body, format="json")
        assert response.status_code == 400
    malformed = client.post(reverse("api:case-list"), "{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "parse_error"
    assert not Case.objects.exists()


def test_the_api_refuses_an_unsupported_content_type(clinician):
    response = api_client(clinician).post(
        reverse("api:case-list"), "subject_ref=x", content_type="text/plain"
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject_ref", "x" * 65),
        ("subject_ref", ""),
        ("subject_ref", "a\x00b"),
        ("body_site", "elbow"),
        ("notes", "n" * 5001),
    ],
)
def test_the_case_form_refuses_bad_fields_with_400_and_says_why(clinician, field, value):
    response = login(clinician).post(reverse("cases:create"), {**GOOD_CASE, field: value})
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not Case.objects.exists()


BAD_REVIEWS = [
    ("decision", "maybe", "invalid_choice"),
    ("decision", None, "null"),
    ("case", "abc", "invalid"),
    ("case", 0, "min_value"),
    ("case", 2**70, "max_value"),
    ("prediction", -1, "min_value"),
    ("prediction", [1], "invalid"),
    ("note", "n" * 5001, "max_length"),
    ("reviewer", "someone-else", "unknown"),
]


@pytest.mark.parametrize(("field", "value", "code"), BAD_REVIEWS)
def test_the_api_validates_every_review_field(
    reviewer, flagged_case, flagged_prediction, field, value, code
):
    payload = {
        "case": flagged_case.pk,
        "prediction": flagged_prediction.pk,
        "decision": "agree",
        field: value,
    }
    response = api_client(reviewer).post(reverse("api:review-list"), payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]
    assert not Review.objects.exists()


def test_the_review_form_refuses_a_bad_decision_with_400(
    reviewer, flagged_case, flagged_prediction
):
    response = login(reviewer).post(
        reverse("cases:review", args=[flagged_case.pk]),
        {f"decision_{flagged_prediction.pk}": "maybe"},
    )
    assert response.status_code == 400
    # The message stands once, in the part of the form for the image whose decision was refused.
    text = response.text
    assert text.count("Select a valid choice.") == 1
    error = text.index("Select a valid choice.")
    legend = text.rindex("<legend", 0, error)
    assert "Image 1 of 1 (lesion.jpg)" in text[legend:error]
    assert "</fieldset>" not in text[legend:error]
    assert not Review.objects.exists()


@pytest.mark.parametrize(
    "query",
    [
        {"state": "everything"},
        {"ordering": "random"},
        {"flagged_from": "yesterday"},
        {"flagged_from": "2024-02-30"},
        {"flagged_to": "9999-12-31"},
        {"flagged_from": "0001-01-01"},
    ],
)
def test_the_queue_api_refuses_bad_filters(reviewer, query):
    response = api_client(reviewer).get(reverse("api:queue"), query)
    assert response.status_code == 400
    assert set(query) <= set(response.json()["error"]["details"])


def test_the_queue_page_refuses_bad_filters_and_shows_the_form_errors(reviewer, flagged_case):
    response = login(reviewer).get(reverse("reviews:queue"), {"flagged_to": "9999-12-31"})
    assert response.status_code == 400
    assert response.context["form"].errors["flagged_to"]
    assert "Flagged to: Choose a date between" in response.text
    # Nothing is listed rather than a queue that looks filtered but is not.
    assert 'data-testid="queue-row"' not in response.text


@pytest.mark.parametrize("htmx", [False, True])
def test_the_queue_page_says_when_the_dates_are_the_wrong_way_round(reviewer, flagged_case, htmx):
    response = login(reviewer).get(
        reverse("reviews:queue"),
        {"flagged_from": "2024-03-02", "flagged_to": "2024-03-01"},
        headers={"HX-Request": "true"} if htmx else {},
    )
    assert response.status_code == 400
    errors = response.text[response.text.index('data-testid="queue-filter-errors"') :]
    assert "date is after the" in errors
    assert "Correct the filters above to see the queue." in response.text


def test_the_queue_api_says_when_the_dates_are_the_wrong_way_round(reviewer):
    response = api_client(reviewer).get(
        reverse("api:queue"), {"flagged_from": "2024-03-02", "flagged_to": "2024-03-01"}
    )
    assert response.status_code == 400
    [message] = response.json()["error"]["details"]["flagged_to"]
    assert "date is after the" in message


def test_the_queue_accepts_a_range_of_one_day(reviewer):
    day = {"flagged_from": "2024-03-01", "flagged_to": "2024-03-01"}
    assert login(reviewer).get(reverse("reviews:queue"), day).status_code == 200
    assert api_client(reviewer).get(reverse("api:queue"), day).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        {"body_site": "elbow"},
        {"review_state": "lost"},
        {"created_after": "not a date"},
        {"created_after": "7362-03-28T18:11:56-22:41"},
        {"created_before": "2024-13-01T00:00:00Z"},
        {"ordering": "password"},
        {"page": "0"},
        {"page": "abc"},
    ],
)
def test_the_case_list_api_refuses_bad_filters(clinician, query):
    response = api_client(clinician).get(reverse("api:case-list"), query)
    # An unknown ordering field is ignored by DRF rather than refused; everything else is 400.
    expected = 200 if "ordering" in query else 404 if "page" in query else 400
    assert response.status_code == expected, response.content


def test_a_far_offset_is_refused_but_a_real_one_is_converted(clinician):
    CaseFactory.create(created_by=clinician)
    client = api_client(clinician)
    real = client.get(reverse("api:case-list"), {"created_after": "2000-01-01T00:00:00+13:45"})
    assert real.status_code == 200
    assert real.json()["count"] == 1
    far = client.get(reverse("api:case-list"), {"created_after": "2000-01-01T00:00:00+15:00"})
    assert far.status_code == 400
    assert "offset" in str(far.json()["error"]["details"])


def test_a_number_too_large_for_a_float_is_not_stored_as_inf(clinician):
    body = '{"subject_ref": 1e999999, "body_site": "trunk_anterior"}'
    response = api_client(clinician).post(
        reverse("api:case-list"), body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"] == {"subject_ref": ["Not a valid string."]}
    assert not Case.objects.exists()


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
@pytest.mark.parametrize("name", ["created_after", "created_before"])
def test_a_date_time_beyond_the_calendar_in_utc_is_refused(clinician, name, moment):
    response = api_client(clinician).get(reverse("api:case-list"), {name: moment})
    assert response.status_code == 400, response.content
    assert "out of range" in str(response.json()["error"]["details"][name])


def test_an_upload_with_the_wrong_field_or_too_many_files_is_refused(clinician, settings):
    case = CaseFactory.create(created_by=clinician)
    client = api_client(clinician)
    url = reverse("api:case-images", args=[case.pk])
    wrong_field = client.post(
        url,
        {"upload": [SimpleUploadedFile("a.jpg", jpeg_bytes(), "image/jpeg")]},
        format="multipart",
    )
    assert wrong_field.status_code == 400
    assert "images" in wrong_field.json()["error"]["details"]
    not_a_file = client.post(url, {"images": "just text"}, format="multipart")
    assert not_a_file.status_code == 400
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    files = [SimpleUploadedFile(f"{n}.jpg", jpeg_bytes(), "image/jpeg") for n in range(4)]
    too_many = client.post(url, {"files": files}, format="multipart")
    assert too_many.status_code == 400
    assert not Image.objects.exists()
