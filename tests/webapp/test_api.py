"""The REST API's contract: payload shapes, filters, ordering, pagination and errors."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from inference.disclaimer import DISCLAIMER
from tests.webapp.conftest import api_client, api_key, login
from tests.webapp.factories import CaseFactory, ClinicianFactory, PredictionFactory, jpeg_bytes
from webapp.cases.models import Case
from webapp.cases.services import case_queue_refresh
from webapp.scoring.models import PredictionStatus


def flag(case: Case, probability: float) -> Case:
    PredictionFactory.create(image__case=case, flagged=True, probability=probability)
    return case_queue_refresh(case_id=case.pk)


def test_it_obtains_a_token_with_a_password(clinician):
    from tests.webapp.factories import PASSWORD

    response = api_client(None).post(
        reverse("api:token"), {"username": clinician.username, "password": PASSWORD}
    )
    assert response.status_code == 200
    assert len(response.json()["token"]) == 40


def test_it_creates_a_case_and_answers_with_the_disclaimer(clinician):
    response = api_client(clinician).post(
        reverse("api:case-list"),
        {"subject_ref": "P-9", "body_site": "head_neck", "notes": "left temple"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["subject_ref"] == "P-9"
    assert body["created_by"] == clinician.username
    assert body["review_state"] == "not_flagged"
    assert body["disclaimer"] == DISCLAIMER


def test_it_explains_an_invalid_case_in_the_shared_error_format(clinician):
    response = api_client(clinician).post(
        reverse("api:case-list"), {"body_site": "elbow"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == 400
    assert error["code"] == "invalid"
    assert set(error["details"]) == {"subject_ref", "body_site"}


def test_it_lists_cases_with_pagination_and_the_disclaimer(clinician):
    CaseFactory.create_batch(3, created_by=clinician)
    response = api_client(clinician).get(reverse("api:case-list"), {"page_size": 2})
    body = response.json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"] is not None
    assert all(case["disclaimer"] == DISCLAIMER for case in body["results"])


def test_it_filters_and_orders_cases(clinician):
    CaseFactory.create(created_by=clinician, body_site="head_neck")
    CaseFactory.create(created_by=clinician, body_site="palms_soles")
    client = api_client(clinician)
    filtered = client.get(reverse("api:case-list"), {"body_site": "palms_soles"}).json()
    assert [case["body_site"] for case in filtered["results"]] == ["palms_soles"]
    oldest_first = client.get(reverse("api:case-list"), {"ordering": "created_at"}).json()
    assert [case["body_site"] for case in oldest_first["results"]] == ["head_neck", "palms_soles"]


def test_it_uploads_images_and_answers_with_pending_predictions(clinician):
    case = CaseFactory.create(created_by=clinician)
    files = [
        SimpleUploadedFile("a.jpg", jpeg_bytes(), content_type="image/jpeg"),
        SimpleUploadedFile("b.jpg", jpeg_bytes(color=(10, 10, 10)), content_type="image/jpeg"),
    ]
    response = api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"images": files}, format="multipart"
    )
    assert response.status_code == 201
    images = response.json()
    assert [image["original_filename"] for image in images] == ["a.jpg", "b.jpg"]
    assert all(image["prediction"]["status"] == "pending" for image in images)
    assert images[0]["file_url"].endswith(f"/api/v1/cases/{case.pk}/images/{images[0]['id']}/file/")


def test_it_rejects_an_upload_that_is_not_an_image(clinician):
    case = CaseFactory.create(created_by=clinician)
    bad = SimpleUploadedFile("x.jpg", b"nope", content_type="image/jpeg")
    response = api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"images": [bad]}, format="multipart"
    )
    assert response.status_code == 400
    assert "x.jpg" in response.json()["error"]["details"]["images"][0]


def test_it_shows_a_case_with_its_images_and_latest_scores(
    flagged_case, flagged_prediction, reviewer
):
    body = api_client(reviewer).get(reverse("api:case-detail", args=[flagged_case.pk])).json()
    assert body["disclaimer"] == DISCLAIMER
    [image] = body["images"]
    prediction = image["prediction"]
    assert prediction["id"] == flagged_prediction.pk
    assert prediction["status"] == "done"
    assert prediction["high_risk"] is True
    assert prediction["high_risk"] == (prediction["probability"] >= prediction["threshold"])
    assert prediction["model_name"] == "Test model"
    assert prediction["model_version"] == "test-1"


def test_it_reports_a_prediction_status(flagged_prediction, clinician):
    body = (
        api_client(clinician)
        .get(reverse("api:prediction-detail", args=[flagged_prediction.pk]))
        .json()
    )
    assert body["status"] == PredictionStatus.DONE
    assert body["case_id"] == flagged_prediction.image.case_id


def test_it_answers_404_in_the_error_format(clinician):
    response = api_client(clinician).get(reverse("api:case-detail", args=[999999]))
    assert response.status_code == 404
    assert response.json() == {
        "error": {"status": 404, "code": "not_found", "message": "Not found.", "details": None}
    }


def test_it_lists_the_queue_by_probability_then_by_date(reviewer):
    low = flag(CaseFactory.create(), 0.6)
    high = flag(CaseFactory.create(), 0.97)
    client = api_client(reviewer)
    by_probability = client.get(reverse("api:queue")).json()["results"]
    assert [case["id"] for case in by_probability] == [high.pk, low.pk]
    oldest_flag_first = client.get(reverse("api:queue"), {"ordering": "flagged"}).json()["results"]
    assert [case["id"] for case in oldest_flag_first] == [low.pk, high.pk]


def test_it_filters_the_queue_by_review_state_and_date(reviewer, flagged_case, flagged_prediction):
    client = api_client(reviewer)
    assert client.get(reverse("api:queue")).json()["count"] == 1
    client.post(
        reverse("api:review-list"),
        {"case": flagged_case.pk, "prediction": flagged_prediction.pk, "decision": "agree"},
        format="json",
    )
    assert client.get(reverse("api:queue")).json()["count"] == 0
    assert client.get(reverse("api:queue"), {"state": "reviewed"}).json()["count"] == 1
    assert client.get(reverse("api:queue"), {"state": "all"}).json()["count"] == 1
    tomorrow = (timezone.now() + dt.timedelta(days=1)).date().isoformat()
    assert (
        client.get(reverse("api:queue"), {"state": "all", "flagged_from": tomorrow}).json()["count"]
        == 0
    )


def test_it_rejects_an_unknown_queue_filter(reviewer):
    response = api_client(reviewer).get(reverse("api:queue"), {"state": "maybe"})
    assert response.status_code == 400
    assert "state" in response.json()["error"]["details"]


def test_it_records_a_review_through_the_api(reviewer, flagged_case, flagged_prediction):
    response = api_client(reviewer).post(
        reverse("api:review-list"),
        {
            "case": flagged_case.pk,
            "prediction": flagged_prediction.pk,
            "decision": "follow_up",
            "note": "recheck in 3 months",
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["decision"] == "follow_up"
    assert body["reviewer"] == reviewer.username
    listed = api_client(reviewer).get(reverse("api:review-list"), {"case": flagged_case.pk}).json()
    assert [review["id"] for review in listed["results"]] == [body["id"]]


def test_a_review_through_the_api_supersedes_the_standing_one(
    reviewer, flagged_case, flagged_prediction
):
    client = api_client(reviewer)

    def post(decision: str) -> dict:
        payload = {"case": flagged_case.pk, "prediction": flagged_prediction.pk}
        response = client.post(
            reverse("api:review-list"), {**payload, "decision": decision}, format="json"
        )
        assert response.status_code == 201
        return response.json()

    first, second = post("agree"), post("refer")
    assert (second["standing"], second["superseded_at"], second["superseded_by"]) == (
        True,
        None,
        None,
    )
    listed = {
        review["id"]: review for review in client.get(reverse("api:review-list")).json()["results"]
    }
    assert listed[first["id"]]["standing"] is False
    assert listed[first["id"]]["superseded_by"] == second["id"]
    assert listed[first["id"]]["superseded_at"] is not None
    standing = client.get(reverse("api:review-list"), {"standing": "true"}).json()
    assert [review["id"] for review in standing["results"]] == [second["id"]]
    superseded = client.get(reverse("api:review-list"), {"standing": "false"}).json()
    assert [review["id"] for review in superseded["results"]] == [first["id"]]
    # The case reads the standing review beside each image's latest score.
    case = client.get(reverse("api:case-detail", args=[flagged_case.pk])).json()
    assert case["images"][0]["review"]["id"] == second["id"]
    assert case["images"][0]["review"]["decision"] == "refer"


def test_an_image_without_a_review_has_none_in_the_case(flagged_case, reviewer):
    case = api_client(reviewer).get(reverse("api:case-detail", args=[flagged_case.pk])).json()
    assert case["images"][0]["review"] is None


def test_it_refuses_a_review_of_a_score_from_another_case(reviewer, flagged_case):
    other = PredictionFactory.create(flagged=True)
    response = api_client(reviewer).post(
        reverse("api:review-list"),
        {"case": flagged_case.pk, "prediction": other.pk, "decision": "agree"},
        format="json",
    )
    assert response.status_code == 400
    assert "prediction" in response.json()["error"]["details"]


@pytest.mark.django_db
def test_it_publishes_an_openapi_schema_with_the_disclaimer(reviewer):
    response = api_client(reviewer).get(reverse("api-schema"), {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert "not a medical diagnosis" in schema["info"]["description"]
    for path in (
        "/api/v1/cases/",
        "/api/v1/cases/{case_id}/images/",
        "/api/v1/queue/",
        "/api/v1/reviews/",
    ):
        assert path in schema["paths"]


def test_it_serves_the_docs_with_local_assets(client, reviewer):
    client.force_login(reviewer)
    response = client.get(reverse("api-docs"))
    assert response.status_code == 200
    assert "drf_spectacular_sidecar/swagger-ui-dist" in response.text
    assert "cdn" not in response.text.lower()


@pytest.mark.django_db
def test_the_schema_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )
    assert "disclaimer" in (tmp_path / "schema.yml").read_text()


def _token_header(user, scheme: str) -> dict[str, str]:
    return {"Authorization": f"{scheme} {api_key(user)}"}


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "bearer"])
def test_it_accepts_the_token_as_token_or_bearer(clinician, scheme):
    CaseFactory.create(created_by=clinician)
    response = Client().get(reverse("api:case-list"), headers=_token_header(clinician, scheme))
    assert response.status_code == 200
    assert response.json()["count"] == 1


@pytest.mark.parametrize("scheme", ["Token", "Bearer"])
def test_the_file_url_serves_the_image_to_a_token_client(clinician, scheme):
    image = PredictionFactory.create(image__case__created_by=clinician).image
    headers = _token_header(clinician, scheme)
    listed = Client().get(reverse("api:case-images", args=[image.case_id]), headers=headers)
    file_url = listed.json()["results"][0]["file_url"]
    response = Client().get(file_url, headers={**headers, "Accept": "image/*"})
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response.getvalue() == image.file.open("rb").read()


def test_the_file_url_answers_others_and_strangers_in_the_error_format(clinician):
    image = PredictionFactory.create(image__case__created_by=clinician).image
    url = reverse("api:image-file", args=[image.case_id, image.pk])
    stranger = Client().get(url, headers=_token_header(ClinicianFactory.create(), "Bearer"))
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "not_found"
    nobody = Client().get(url)
    assert nobody.status_code == 401
    assert nobody.json()["error"]["code"] == "not_authenticated"
    bad_token = Client().get(url, headers={"Authorization": "Bearer not-a-token"})
    assert bad_token.status_code == 401


@pytest.mark.django_db
def test_the_docs_and_schema_are_public_and_say_how_to_authenticate():
    # A stale token must not lock anyone out of the documentation either.
    for headers in ({}, {"Authorization": "Token stale"}):
        schema = Client().get(reverse("api-schema"), {"format": "json"}, headers=headers)
        assert schema.status_code == 200
        docs = Client().get(reverse("api-docs"), headers=headers)
        assert docs.status_code == 200
    body = schema.json()
    assert "Authorization: Token <token>" in body["info"]["description"]
    assert "Authorization: Bearer <token>" in body["info"]["description"]
    assert body["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The API token as a bearer token: `Bearer <token>`.",
    }
    image_file = body["paths"]["/api/v1/cases/{case_id}/images/{image_id}/file/"]["get"]
    assert set(image_file["responses"]["200"]["content"]) == {"image/jpeg", "image/png"}


def test_the_upload_field_has_the_browser_forms_name_and_the_old_one_still_works(clinician):
    case = CaseFactory.create(created_by=clinician)
    client = api_client(clinician)
    url = reverse("api:case-images", args=[case.pk])
    for name in ("images", "files"):
        upload = SimpleUploadedFile(f"{name}.jpg", jpeg_bytes(), content_type="image/jpeg")
        response = client.post(url, {name: [upload]}, format="multipart")
        assert response.status_code == 201, response.content
    assert sorted(case.images.values_list("original_filename", flat=True)) == [
        "files.jpg",
        "images.jpg",
    ]
    browser_form = login(clinician).get(reverse("cases:detail", args=[case.pk])).text
    assert 'name="images"' in browser_form


def test_the_schema_documents_the_old_upload_field_name_as_deprecated(clinician):
    schema = api_client(clinician).get(reverse("api-schema"), {"format": "json"}).json()
    fields = schema["components"]["schemas"]["ImageUploadRequest"]["properties"]
    assert "deprecated" not in fields["images"]
    assert fields["files"]["deprecated"] is True


def test_prediction_image_and_review_payloads_carry_the_disclaimer(
    flagged_case, flagged_prediction, reviewer
):
    client = api_client(reviewer)
    prediction = client.get(reverse("api:prediction-detail", args=[flagged_prediction.pk])).json()
    assert prediction["disclaimer"] == DISCLAIMER
    [image] = client.get(reverse("api:case-images", args=[flagged_case.pk])).json()["results"]
    assert image["disclaimer"] == DISCLAIMER
    review = client.post(
        reverse("api:review-list"),
        {"case": flagged_case.pk, "prediction": flagged_prediction.pk, "decision": "agree"},
        format="json",
    ).json()
    assert review["disclaimer"] == DISCLAIMER
    [listed] = client.get(reverse("api:review-list")).json()["results"]
    assert listed["disclaimer"] == DISCLAIMER


def test_the_schema_documents_the_disclaimer_of_every_payload(clinician):
    schemas = api_client(clinician).get(reverse("api-schema"), {"format": "json"}).json()
    for name in ("Case", "CaseDetail", "Image", "Prediction", "Review"):
        field = schemas["components"]["schemas"][name]["properties"]["disclaimer"]
        assert field["type"] == "string"
        assert field["readOnly"] is True
        assert "not a medical diagnosis" in field["description"]
        assert "disclaimer" in schemas["components"]["schemas"][name]["required"]


def test_the_pages_the_api_and_the_command_line_share_one_disclaimer():
    import inference

    assert DISCLAIMER is inference.DISCLAIMER


def test_a_prediction_says_why_the_model_cannot_judge_its_image(clinician):
    prediction = PredictionFactory.create(
        image__case__created_by=clinician, gated=True, gate_reason="too_dark", with_heatmap=True
    )
    body = api_client(clinician).get(reverse("api:prediction-detail", args=[prediction.pk])).json()
    assert body["gate_reason"] == "too_dark"
    assert body["gate_message"] == "Too dark to judge."
    assert body["high_risk"] is False
    # The raw score stays available to whoever asks for it.
    assert body["probability"] == pytest.approx(0.9)


def test_a_prediction_the_gate_passed_has_no_reason(flagged_prediction, clinician):
    body = (
        api_client(clinician)
        .get(reverse("api:prediction-detail", args=[flagged_prediction.pk]))
        .json()
    )
    assert body["gate_reason"] is None
    assert body["gate_message"] is None
    assert body["heatmap_url"] is None  # the factory stored none


@pytest.mark.parametrize("scheme", ["Token", "Bearer"])
def test_the_heatmap_url_serves_the_overlay_png_to_a_token_client(clinician, scheme):
    prediction = PredictionFactory.create(
        image__case__created_by=clinician, flagged=True, with_heatmap=True
    )
    headers = _token_header(clinician, scheme)
    case_id = prediction.image.case_id
    listed = Client().get(reverse("api:case-images", args=[case_id]), headers=headers)
    heatmap_url = listed.json()["results"][0]["prediction"]["heatmap_url"]
    assert heatmap_url == (
        "http://testserver" + reverse("api:prediction-heatmap", args=[prediction.pk])
    )
    detail = Client().get(reverse("api:case-detail", args=[case_id]), headers=headers).json()
    assert detail["images"][0]["prediction"]["heatmap_url"] == heatmap_url
    response = Client().get(heatmap_url, headers={**headers, "Accept": "image/*"})
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "no-store"
    assert response.getvalue() == prediction.heatmap.open("rb").read()

    stranger = Client().get(heatmap_url, headers=_token_header(ClinicianFactory.create(), scheme))
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "not_found"
    assert Client().get(heatmap_url).status_code == 401


def test_the_queue_api_lists_the_cases_that_need_a_better_image(reviewer, flagged_case):
    gated = PredictionFactory.create(gated=True)
    case = case_queue_refresh(case_id=gated.image.case_id)
    client = api_client(reviewer)
    bucket = client.get(reverse("api:queue"), {"state": "needs_image"}).json()
    assert [item["id"] for item in bucket["results"]] == [case.pk]
    assert bucket["results"][0]["review_state"] == "needs_image"
    assert bucket["results"][0]["top_probability"] is None
    unreviewed = client.get(reverse("api:queue")).json()
    assert [item["id"] for item in unreviewed["results"]] == [flagged_case.pk]
    listed = client.get(reverse("api:case-list"), {"review_state": "needs_image"}).json()
    assert [item["id"] for item in listed["results"]] == [case.pk]


def test_the_schema_documents_the_gate_and_the_heatmap(clinician):
    schema = api_client(clinician).get(reverse("api-schema"), {"format": "json"}).json()
    fields = schema["components"]["schemas"]["Prediction"]["properties"]
    assert {"gate_reason", "gate_message", "heatmap_url"} <= set(fields)
    assert fields["heatmap_url"]["nullable"] is True
    heatmap = schema["paths"]["/api/v1/predictions/{prediction_id}/heatmap/"]["get"]
    assert "image/png" in heatmap["responses"]["200"]["content"]
    queue = schema["paths"]["/api/v1/queue/"]["get"]["parameters"]
    [state] = [parameter for parameter in queue if parameter["name"] == "state"]
    assert "needs_image" in state["schema"]["enum"]
