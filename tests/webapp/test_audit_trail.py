"""Every read, refusal, upload, score, review, sign-in, sign-out and failed sign-in is in the
history, and the history cannot be changed or deleted through the app, the API or the admin."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.webapp.conftest import StubClassifier, api_client, login
from tests.webapp.factories import (
    PASSWORD,
    CaseFactory,
    PredictionFactory,
    ReviewFactory,
    jpeg_bytes,
)
from webapp.audit.models import AuditAction, AuditEvent, AuditHistoryImmutableError
from webapp.audit.services import audit_record
from webapp.scoring.services import predictions_drain

pytestmark = pytest.mark.django_db


def events(action: AuditAction, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters))


def test_opening_a_case_page_is_recorded(flagged_case, reviewer):
    login(reviewer).get(reverse("cases:detail", args=[flagged_case.pk]))
    [event] = events(AuditAction.CASE_VIEWED, case=flagged_case)
    assert event.actor == reviewer
    assert event.data == {"via": "page"}


def test_reading_a_case_through_the_api_is_recorded(flagged_case, reviewer):
    client = api_client(reviewer)
    client.get(reverse("api:case-detail", args=[flagged_case.pk]))
    client.get(reverse("api:case-images", args=[flagged_case.pk]))
    vias = sorted(event.data["via"] for event in events(AuditAction.CASE_VIEWED, actor=reviewer))
    assert vias == ["api", "api-images"]


def test_opening_an_image_file_is_recorded(flagged_case, flagged_prediction, clinician):
    image = flagged_prediction.image
    response = login(clinician).get(reverse("cases:image-file", args=[flagged_case.pk, image.pk]))
    assert response.status_code == 200
    [event] = events(AuditAction.IMAGE_VIEWED, case=flagged_case)
    assert (event.actor, event.data) == (clinician, {"image_id": image.pk})


def test_a_refused_read_is_recorded_as_a_denial_not_a_view(flagged_case, other_clinician):
    login(other_clinician).get(reverse("cases:detail", args=[flagged_case.pk]))
    api_client(other_clinician).get(reverse("api:case-detail", args=[flagged_case.pk]))
    assert not events(AuditAction.CASE_VIEWED, actor=other_clinician)
    denials = events(AuditAction.ACCESS_DENIED, actor=other_clinician, case=flagged_case)
    assert [(event.data["via"], event.data["status"]) for event in denials] == [
        ("page", 404),
        ("api", 404),
    ]


def test_an_upload_is_recorded(clinician, django_capture_on_commit_callbacks):
    case = CaseFactory.create(created_by=clinician)
    upload = SimpleUploadedFile("lesion.jpg", jpeg_bytes(), "image/jpeg")
    api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"files": [upload]}, format="multipart"
    )
    [event] = events(AuditAction.IMAGE_UPLOADED, case=case)
    assert event.actor == clinician


def test_a_score_is_recorded_once():
    PredictionFactory.create()
    classifier = StubClassifier(probability=0.2)
    predictions_drain(classifier_loader=lambda: classifier)
    predictions_drain(classifier_loader=lambda: classifier)
    assert len(events(AuditAction.PREDICTION_SCORED)) == 1


def test_a_review_is_recorded(flagged_case, flagged_prediction, reviewer):
    api_client(reviewer).post(
        reverse("api:review-list"),
        {"case": flagged_case.pk, "prediction": flagged_prediction.pk, "decision": "agree"},
        format="json",
    )
    [event] = events(AuditAction.REVIEW_RECORDED, case=flagged_case)
    assert event.actor == reviewer


def test_signing_in_and_out_is_recorded(clinician):
    client = Client()
    response = client.post(reverse("login"), {"username": clinician.username, "password": PASSWORD})
    assert response.status_code == 302
    client.post(reverse("logout"))
    [signed_in] = events(AuditAction.USER_LOGGED_IN)
    [signed_out] = events(AuditAction.USER_LOGGED_OUT)
    assert signed_in.actor == clinician
    assert signed_in.data == {"ip": "127.0.0.1", "via": "browser"}
    assert signed_out.actor == clinician


def test_a_failed_sign_in_is_recorded_without_the_password(clinician):
    Client().post(reverse("login"), {"username": clinician.username, "password": "wrong-guess"})
    [event] = events(AuditAction.USER_LOGIN_FAILED)
    assert event.actor is None
    assert event.data == {"username": clinician.username, "ip": "127.0.0.1"}
    assert "wrong-guess" not in str(event.data)


def test_token_sign_ins_failures_and_revocations_are_recorded(clinician):
    client = api_client(None)
    client.post(reverse("api:token"), {"username": clinician.username, "password": "nope"})
    token = client.post(
        reverse("api:token"), {"username": clinician.username, "password": PASSWORD}
    ).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    client.delete(reverse("api:token"))
    assert len(events(AuditAction.USER_LOGIN_FAILED)) == 1
    [signed_in] = events(AuditAction.USER_LOGGED_IN)
    assert signed_in.data["via"] == "api-token"
    assert len(events(AuditAction.TOKEN_REVOKED, actor=clinician)) == 1


def test_the_orm_refuses_to_change_or_delete_history(flagged_case, clinician):
    event = audit_record(action=AuditAction.CASE_VIEWED, actor=clinician, case=flagged_case)
    event.action = AuditAction.CASE_CREATED
    with pytest.raises(AuditHistoryImmutableError):
        event.save()
    with pytest.raises(AuditHistoryImmutableError):
        event.delete()
    with pytest.raises(AuditHistoryImmutableError):
        AuditEvent.objects.filter(pk=event.pk).update(data={})
    with pytest.raises(AuditHistoryImmutableError):
        AuditEvent.objects.all().delete()
    event.refresh_from_db()
    assert event.action == AuditAction.CASE_VIEWED


def test_the_admin_refuses_to_add_change_or_delete_history(flagged_case, admin_user):
    event = audit_record(action=AuditAction.CASE_VIEWED, actor=admin_user, case=flagged_case)
    client = login(admin_user)
    change = reverse("admin:audit_auditevent_change", args=[event.pk])
    assert client.post(change, {"action": "case.created", "data": "{}"}).status_code == 403
    delete = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    bulk = client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302, 403)
    event.refresh_from_db()
    assert event.action == AuditAction.CASE_VIEWED
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_api_has_no_way_to_write_history(admin_user):
    from django.urls import get_resolver

    patterns = [str(pattern.pattern) for pattern in get_resolver().url_patterns]
    api = api_client(admin_user)
    for method in ("get", "post", "put", "patch", "delete"):
        assert getattr(api, method)("/api/v1/audit/").status_code == 404
    assert not any("audit" in pattern for pattern in patterns if pattern.startswith("api"))


HTMX = {"HX-Request": "true"}


def test_polling_the_case_page_and_reading_its_timeline_are_recorded(flagged_case, clinician):
    client = login(clinician)
    client.get(reverse("cases:detail", args=[flagged_case.pk]), headers=HTMX)
    client.get(reverse("cases:timeline", args=[flagged_case.pk]))
    vias = [event.data["via"] for event in events(AuditAction.CASE_VIEWED, case=flagged_case)]
    assert vias == ["poll", "timeline"]


def test_a_list_of_cases_is_one_event_naming_its_cases(clinician):
    cases = CaseFactory.create_batch(3, created_by=clinician)
    CaseFactory.create()  # someone else's: not shown, not named
    api_client(clinician).get(reverse("api:case-list"))
    login(clinician).get(reverse("cases:list"))
    listed = events(AuditAction.CASE_LIST_VIEWED, actor=clinician)
    assert [event.data["via"] for event in listed] == ["api", "page"]
    for event in listed:
        assert event.case is None
        assert sorted(event.data["case_ids"]) == sorted(case.pk for case in cases)


def test_a_page_of_a_list_names_only_the_cases_on_it(clinician):
    CaseFactory.create_batch(3, created_by=clinician)
    response = api_client(clinician).get(reverse("api:case-list"), {"page_size": 2, "page": 2})
    [shown] = response.json()["results"]
    [event] = events(AuditAction.CASE_LIST_VIEWED)
    assert event.data["case_ids"] == [shown["id"]]


def test_reading_the_queue_is_recorded_by_page_poll_and_api(flagged_case, reviewer):
    client = login(reviewer)
    client.get(reverse("reviews:queue"))
    client.get(reverse("reviews:queue"), headers=HTMX)
    api_client(reviewer).get(reverse("api:queue"))
    queue_reads = events(AuditAction.QUEUE_VIEWED, actor=reviewer)
    assert [event.data["via"] for event in queue_reads] == ["page", "poll", "api"]
    assert all(event.data["case_ids"] == [flagged_case.pk] for event in queue_reads)


def test_reading_a_score_is_recorded(flagged_case, flagged_prediction, clinician):
    api_client(clinician).get(reverse("api:prediction-detail", args=[flagged_prediction.pk]))
    [event] = events(AuditAction.PREDICTION_VIEWED, case=flagged_case)
    assert event.actor == clinician
    assert event.data["prediction_id"] == flagged_prediction.pk


def test_reading_reviews_is_one_event_naming_them_and_their_cases(
    flagged_case, flagged_prediction, reviewer
):
    review = ReviewFactory.create(prediction=flagged_prediction, case=flagged_case)
    api_client(reviewer).get(reverse("api:review-list"))
    [event] = events(AuditAction.REVIEW_LIST_VIEWED, actor=reviewer)
    assert event.data == {"via": "api", "case_ids": [flagged_case.pk], "review_ids": [review.pk]}


def test_every_refused_read_of_anothers_case_is_recorded(
    flagged_case, flagged_prediction, other_clinician
):
    image = flagged_prediction.image
    client = login(other_clinician)
    api = api_client(other_clinician)
    refused = [
        client.get(reverse("cases:detail", args=[flagged_case.pk])),
        client.get(reverse("cases:detail", args=[flagged_case.pk]), headers=HTMX),
        client.get(reverse("cases:timeline", args=[flagged_case.pk])),
        client.get(reverse("cases:image-file", args=[flagged_case.pk, image.pk])),
        api.get(reverse("api:case-images", args=[flagged_case.pk])),
        api.get(reverse("api:image-file", args=[flagged_case.pk, image.pk])),
        api.get(reverse("api:prediction-detail", args=[flagged_prediction.pk])),
    ]
    assert {response.status_code for response in refused} == {404}
    denials = events(AuditAction.ACCESS_DENIED, actor=other_clinician)
    assert len(denials) == len(refused)
    # The prediction's address names no case: the denial keeps its path alone.
    assert [event.case for event in denials] == [flagged_case] * 6 + [None]
    assert denials[-1].data["path"].endswith(f"/predictions/{flagged_prediction.pk}/")
    assert not AuditEvent.objects.filter(actor=other_clinician, case=flagged_case).exclude(
        action=AuditAction.ACCESS_DENIED
    )


def test_refusals_for_a_role_or_without_a_sign_in_are_recorded(clinician):
    assert login(clinician).get(reverse("reviews:queue")).status_code == 403
    assert api_client(clinician).get(reverse("api:queue")).status_code == 403
    assert api_client(None).get(reverse("api:case-list")).status_code in (401, 403)
    denials = events(AuditAction.ACCESS_DENIED)
    assert [(event.actor, event.data["via"]) for event in denials] == [
        (clinician, "page"),
        (clinician, "api"),
        (None, "api"),
    ]
    assert [event.data["status"] for event in denials[:2]] == [403, 403]


def test_a_case_id_that_does_not_exist_is_recorded_without_a_case(clinician):
    missing = 10**9
    login(clinician).get(reverse("cases:detail", args=[missing]))
    [event] = events(AuditAction.ACCESS_DENIED)
    assert event.case is None
    assert event.data["case_id"] == missing


def test_an_address_that_matches_nothing_is_not_a_denial(clinician):
    assert login(clinician).get("/no-such-page/").status_code == 404
    assert api_client(clinician).get("/api/v1/cases/abc/").status_code == 404
    assert not events(AuditAction.ACCESS_DENIED)


def test_a_page_past_the_end_of_a_list_is_not_a_denial(clinician):
    response = api_client(clinician).get(reverse("api:case-list"), {"page": 99})
    assert response.status_code == 404
    assert not events(AuditAction.ACCESS_DENIED)


def test_the_timeline_names_an_unsigned_refusal_as_such(flagged_case, clinician):
    api_client(None).get(reverse("api:case-detail", args=[flagged_case.pk]))
    [event] = events(AuditAction.ACCESS_DENIED, case=flagged_case)
    assert event.actor is None
    timeline = login(clinician).get(reverse("cases:timeline", args=[flagged_case.pk])).text
    assert "Access refused · someone not signed in" in timeline
    assert "Access refused · scoring worker" not in timeline
