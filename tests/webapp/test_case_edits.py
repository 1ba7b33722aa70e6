"""Editing a case, withdrawing an image and uploading the same image twice, in pages and API."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.webapp.conftest import api_client, login
from tests.webapp.factories import CaseFactory, PredictionFactory, jpeg_bytes
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import Case, Image, ReviewState
from webapp.cases.services import case_queue_refresh, image_withdraw
from webapp.scoring.models import PredictionStatus
from webapp.scoring.services import predictions_claim

pytestmark = pytest.mark.django_db

EDIT = {"subject_ref": "P-NEW", "body_site": "head_neck", "notes": "Seen again."}


def jpeg(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="image/jpeg")


# Editing a case.


def test_the_creator_edits_a_case_and_the_history_keeps_before_and_after(clinician):
    case = CaseFactory.create(created_by=clinician, subject_ref="P-OLD", notes="")
    response = login(clinician).post(reverse("cases:edit", args=[case.pk]), EDIT)

    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.subject_ref, case.body_site, case.notes) == ("P-NEW", "head_neck", "Seen again.")
    [event] = AuditEvent.objects.filter(action=AuditAction.CASE_UPDATED, case=case)
    assert event.actor == clinician
    assert event.data == {
        "before": {"subject_ref": "P-OLD", "body_site": "trunk_posterior", "notes": ""},
        "after": {"subject_ref": "P-NEW", "body_site": "head_neck", "notes": "Seen again."},
    }


def test_an_edit_that_changes_nothing_records_nothing(clinician):
    case = CaseFactory.create(created_by=clinician)
    same = {"subject_ref": case.subject_ref, "body_site": case.body_site, "notes": case.notes}
    login(clinician).post(reverse("cases:edit", args=[case.pk]), same)
    assert not AuditEvent.objects.filter(action=AuditAction.CASE_UPDATED).exists()


def test_a_bad_edit_is_refused_with_the_form_and_changes_nothing(clinician):
    case = CaseFactory.create(created_by=clinician, subject_ref="P-OLD")
    response = login(clinician).post(
        reverse("cases:edit", args=[case.pk]), {**EDIT, "subject_ref": "", "body_site": "moon"}
    )
    assert response.status_code == 400
    assert "This field is required." in response.text
    case.refresh_from_db()
    assert case.subject_ref == "P-OLD"


def test_only_the_creator_or_an_admin_edits_a_case(
    clinician, other_clinician, reviewer, admin_user
):
    case = CaseFactory.create(created_by=clinician)
    url = reverse("cases:edit", args=[case.pk])
    assert login(other_clinician).get(url).status_code == 404
    assert login(reviewer).get(url).status_code == 403
    assert login(clinician).get(url).status_code == 200
    assert login(admin_user).post(url, EDIT).status_code == 302
    assert "Edit case" in login(clinician).get(reverse("cases:detail", args=[case.pk])).text
    assert "Edit case" not in login(reviewer).get(reverse("cases:detail", args=[case.pk])).text


def test_the_api_edits_only_the_fields_sent(clinician, reviewer):
    case = CaseFactory.create(created_by=clinician, notes="Keep me.")
    url = reverse("api:case-detail", args=[case.pk])

    response = api_client(clinician).patch(url, {"subject_ref": "P-API"}, format="json")

    assert response.status_code == 200, response.content
    assert (response.json()["subject_ref"], response.json()["notes"]) == ("P-API", "Keep me.")
    assert AuditEvent.objects.get(action=AuditAction.CASE_UPDATED).data["after"] == {
        "subject_ref": "P-API"
    }
    assert api_client(reviewer).patch(url, {"notes": "x"}, format="json").status_code == 403
    refused = api_client(clinician).patch(url, {"nickname": "x"}, format="json")
    assert refused.status_code == 400
    assert "nickname" in refused.json()["error"]["details"]


# Withdrawing an image.


def flagged_image(owner) -> Image:
    prediction = PredictionFactory.create(image__case__created_by=owner, flagged=True)
    case_queue_refresh(case_id=prediction.image.case_id)
    return prediction.image


def test_withdrawing_the_flagged_image_takes_the_case_out_of_the_queue(clinician):
    image = flagged_image(clinician)
    assert Case.objects.get(pk=image.case_id).review_state == ReviewState.UNREVIEWED

    response = login(clinician).post(
        reverse("cases:image-withdraw", args=[image.case_id, image.pk]),
        {"reason": "Wrong patient's lesion."},
    )

    assert response.status_code == 302
    image.refresh_from_db()
    assert image.withdrawn_by == clinician
    assert image.withdrawal_reason == "Wrong patient's lesion."
    assert Case.objects.get(pk=image.case_id).review_state == ReviewState.NOT_FLAGGED
    # Kept, with its score.
    assert image.predictions.get().status == PredictionStatus.DONE
    [event] = AuditEvent.objects.filter(action=AuditAction.IMAGE_WITHDRAWN)
    assert event.data == {"image_id": image.pk, "reason": "Wrong patient's lesion."}
    page = login(clinician).get(reverse("cases:detail", args=[image.case_id])).text
    assert 'data-withdrawn="true"' in page
    assert "Withdrawn</span>" in page


def test_a_withdrawn_images_score_is_no_longer_offered_for_review_nor_counted(clinician):
    from webapp.reviews.selectors import QueueFilter, case_review_predictions, queue_list

    image = flagged_image(clinician)
    kept = PredictionFactory.create(image__case=image.case, flagged=True)
    case_queue_refresh(case_id=image.case_id)
    image_withdraw(image=image, withdrawn_by=clinician, reason="Wrong lesion.")

    assert list(case_review_predictions(case=image.case)) == [kept]
    [row] = queue_list(state=QueueFilter.UNREVIEWED)
    # The queue's annotations, which the model's type does not declare.
    annotated = vars(row)
    assert (annotated["image_count"], annotated["queued_count"], annotated["top_image_id"]) == (
        1,
        1,
        kept.image_id,
    )


def test_a_withdrawn_image_is_no_longer_scored(clinician):
    pending = PredictionFactory.create(image__case__created_by=clinician)
    image_withdraw(image=pending.image, withdrawn_by=clinician, reason="Blurred.")
    assert predictions_claim(limit=10) == []
    page = login(clinician).get(reverse("cases:detail", args=[pending.image.case_id]))
    assert 'data-scoring="idle"' in page.text


def test_a_withdrawal_needs_a_reason_and_happens_once(clinician):
    image = flagged_image(clinician)
    url = reverse("cases:image-withdraw", args=[image.case_id, image.pk])
    client = login(clinician)

    blank = client.post(url, {"reason": "  "})
    assert blank.status_code == 400
    assert "This field is required." in blank.text
    assert client.post(url, {"reason": "Blurred."}).status_code == 302
    again = client.post(url, {"reason": "Blurred."})
    assert again.status_code == 400
    assert "already withdrawn" in again.text
    assert AuditEvent.objects.filter(action=AuditAction.IMAGE_WITHDRAWN).count() == 1


def test_only_the_creator_or_an_admin_withdraws_an_image(clinician, other_clinician, reviewer):
    image = flagged_image(clinician)
    url = reverse("cases:image-withdraw", args=[image.case_id, image.pk])
    assert login(other_clinician).post(url, {"reason": "x"}).status_code == 404
    assert login(reviewer).post(url, {"reason": "x"}).status_code == 403
    image.refresh_from_db()
    assert not image.withdrawn


def test_the_api_withdraws_an_image_and_marks_it(clinician):
    image = flagged_image(clinician)
    client = api_client(clinician)
    url = reverse("api:image-withdrawal", args=[image.case_id, image.pk])

    response = client.post(url, {"reason": "Duplicate of another visit."}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["withdrawn"], body["withdrawn_by"]) == (True, clinician.username)
    assert body["withdrawal_reason"] == "Duplicate of another visit."
    assert body["prediction"]["status"] == "done"
    again = client.post(url, {"reason": "Again."}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_withdrawn"
    listed = client.get(reverse("api:case-images", args=[image.case_id])).json()["results"]
    assert [row["withdrawn"] for row in listed] == [True]
    assert client.post(url, {}, format="json").status_code == 400


# Uploading the same bytes twice.


def test_the_page_names_a_duplicate_and_stores_the_rest(clinician):
    case = CaseFactory.create(created_by=clinician)
    first, second = jpeg_bytes(), jpeg_bytes()
    client = login(clinician)
    client.post(reverse("cases:upload", args=[case.pk]), {"images": [jpeg("a.jpg", first)]})

    response = client.post(
        reverse("cases:upload", args=[case.pk]),
        {"images": [jpeg("again.jpg", first), jpeg("b.jpg", second)]},
        follow=True,
    )

    assert [image.original_filename for image in case.images.all()] == ["a.jpg", "b.jpg"]
    text = response.content.decode()
    assert "again.jpg is already stored in this case as Image 1 of 2 (a.jpg)" in text
    assert "1 image uploaded; scoring started." in text


def test_a_file_sent_twice_in_one_upload_is_stored_once(clinician):
    case = CaseFactory.create(created_by=clinician)
    content = jpeg_bytes()
    login(clinician).post(
        reverse("cases:upload", args=[case.pk]),
        {"images": [jpeg("one.jpg", content), jpeg("two.jpg", content)]},
    )
    assert [image.original_filename for image in case.images.all()] == ["one.jpg"]


def test_a_withdrawn_images_bytes_may_be_uploaded_again(clinician):
    case = CaseFactory.create(created_by=clinician)
    content = jpeg_bytes()
    client = login(clinician)
    client.post(reverse("cases:upload", args=[case.pk]), {"images": [jpeg("a.jpg", content)]})
    image_withdraw(image=case.images.get(), withdrawn_by=clinician, reason="Mislabelled.")
    client.post(reverse("cases:upload", args=[case.pk]), {"images": [jpeg("a.jpg", content)]})
    assert case.images.count() == 2


def test_the_api_answers_409_when_every_file_is_a_duplicate(clinician):
    case = CaseFactory.create(created_by=clinician)
    content = jpeg_bytes()
    client = api_client(clinician)
    url = reverse("api:case-images", args=[case.pk])
    stored = client.post(url, {"images": [jpeg("a.jpg", content)]}, format="multipart").json()

    response = client.post(url, {"images": [jpeg("a2.jpg", content)]}, format="multipart")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "duplicate_images"
    assert f"a2.jpg (image {stored[0]['id']})" in error["message"]
    assert case.images.count() == 1


def test_the_api_marks_duplicates_among_the_new_images(clinician):
    case = CaseFactory.create(created_by=clinician)
    old, new = jpeg_bytes(), jpeg_bytes()
    client = api_client(clinician)
    url = reverse("api:case-images", args=[case.pk])
    [stored] = client.post(url, {"images": [jpeg("a.jpg", old)]}, format="multipart").json()

    response = client.post(
        url, {"images": [jpeg("b.jpg", new), jpeg("a-again.jpg", old)]}, format="multipart"
    )

    assert response.status_code == 201
    body = response.json()
    assert [(row["original_filename"], row["duplicate"]) for row in body] == [
        ("b.jpg", False),
        ("a.jpg", True),
    ]
    assert body[1]["id"] == stored["id"]
    assert case.images.count() == 2
