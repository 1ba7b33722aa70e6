"""Upload through the API, score in a real Celery worker with the served model, review."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.webapp.conftest import api_client
from tests.webapp.e2e import wait_for
from tests.webapp.factories import (
    ClinicianFactory,
    ImageFactory,
    PredictionFactory,
    ReviewerFactory,
)
from webapp.audit.models import AuditAction, AuditEvent
from webapp.scoring.models import Prediction, PredictionStatus
from webapp.scoring.tasks import predictions_score

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCORING_TIMEOUT = 180  # the first task also loads TensorFlow and the model


def test_an_uploaded_image_is_scored_by_the_worker_and_enters_the_queue(e2e, flagged_lesion):
    clinician = api_client(ClinicianFactory.create())
    reviewer = api_client(ReviewerFactory.create())

    case = clinician.post(
        reverse("api:case-list"),
        {"subject_ref": "E2E-1", "body_site": "trunk_posterior"},
        format="json",
    ).json()
    upload = clinician.post(
        reverse("api:case-images", args=[case["id"]]),
        {
            "files": [
                SimpleUploadedFile(
                    flagged_lesion.path.name, flagged_lesion.read_bytes(), "image/jpeg"
                )
            ]
        },
        format="multipart",
    )
    assert upload.status_code == 201
    prediction_id = upload.json()[0]["prediction"]["id"]
    prediction_url = reverse("api:prediction-detail", args=[prediction_id])

    def finished() -> bool:
        return clinician.get(prediction_url).json()["status"] in ("done", "failed")

    wait_for(finished, timeout=SCORING_TIMEOUT, what="the upload to be scored", worker=e2e)
    result = clinician.get(prediction_url).json()
    assert result["status"] == "done", result["error_message"]
    assert 0.0 <= result["probability"] <= 1.0
    assert result["high_risk"] == (result["probability"] >= result["threshold"])
    assert result["high_risk"] is True
    # The worker scored the stored (re-encoded) file; the score matches the original closely.
    assert result["probability"] == pytest.approx(flagged_lesion.probability, abs=0.05)
    assert "EfficientNet" in result["model_name"]
    assert result["model_version"]
    assert result["attempts"] == 1

    queue = reviewer.get(reverse("api:queue")).json()
    assert [item["id"] for item in queue["results"]] == [case["id"]]
    assert queue["results"][0]["top_probability"] == pytest.approx(result["probability"])

    review = reviewer.post(
        reverse("api:review-list"),
        {"case": case["id"], "prediction": prediction_id, "decision": "refer"},
        format="json",
    )
    assert review.status_code == 201
    assert reviewer.get(reverse("api:queue")).json()["count"] == 0
    assert reviewer.get(reverse("api:queue"), {"state": "reviewed"}).json()["count"] == 1


def test_a_repeated_wake_up_does_not_score_a_row_twice(e2e, flagged_lesion):
    prediction = PredictionFactory.create(image__content=flagged_lesion.read_bytes())
    # Two wake-ups for the same pending row, as a duplicated or redelivered message would be.
    deliveries = [predictions_score.delay(), predictions_score.delay()]

    def settled() -> bool:
        log = e2e.log()
        return all(f"{delivery.id}] succeeded" in log for delivery in deliveries)

    wait_for(settled, timeout=SCORING_TIMEOUT, what="both deliveries to finish", worker=e2e)
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.DONE
    assert prediction.attempts == 1
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).count() == 1


def test_an_undecodable_image_fails_with_a_message_instead_of_pending_forever(e2e):
    image = ImageFactory.create(
        file=ContentFile(b"\xff\xd8 truncated, not really a jpeg", name="broken.jpg")
    )
    prediction = PredictionFactory.create(image=image)
    predictions_score.delay()

    def failed() -> bool:
        return Prediction.objects.get(pk=prediction.pk).status == PredictionStatus.FAILED

    wait_for(failed, timeout=SCORING_TIMEOUT, what="the broken image to fail", worker=e2e)
    prediction.refresh_from_db()
    assert "could not be decoded" in prediction.error_message
