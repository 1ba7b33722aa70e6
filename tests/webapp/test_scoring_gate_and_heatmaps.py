"""What a worker records besides the score: the input gate's verdict and the heatmap file."""

from __future__ import annotations

import io
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path, PurePosixPath

import PIL.Image
import pytest
from django.core.files.storage import default_storage
from django.db import DatabaseError

from inference.gate import GateReason
from tests.webapp.conftest import StubClassifier, StubResult
from tests.webapp.factories import PredictionFactory
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import ReviewState
from webapp.reviews.models import Decision
from webapp.reviews.services import review_create
from webapp.scoring import services
from webapp.scoring.models import Prediction, PredictionStatus
from webapp.scoring.services import predictions_claim, predictions_drain

pytestmark = pytest.mark.django_db


def drain(classifier: StubClassifier) -> int:
    return predictions_drain(classifier_loader=lambda: classifier)


def stored_files(media_root: Path) -> set[str]:
    return {str(path.relative_to(media_root)) for path in media_root.rglob("*") if path.is_file()}


def test_it_stores_a_heatmap_png_beside_the_image_with_its_aspect_ratio():
    prediction = PredictionFactory.create(image__width=600, image__height=400)
    drain(StubClassifier(probability=0.2))
    prediction.refresh_from_db()

    assert prediction.heatmap
    image_name = PurePosixPath(prediction.image.file.name or "")
    heatmap_name = PurePosixPath(prediction.heatmap.name or "")
    assert heatmap_name.parent == image_name.parent
    assert heatmap_name.name == f"{image_name.stem}-heatmap-{prediction.pk}.png"
    with prediction.heatmap.open("rb") as handle:
        overlay = PIL.Image.open(io.BytesIO(handle.read()))
        assert overlay.format == "PNG"
        assert overlay.mode == "RGBA"
        assert overlay.size == (256, 171)


def test_a_gated_image_gets_its_reason_and_is_never_high_risk():
    prediction = PredictionFactory.create()
    drain(StubClassifier(probability=0.9, gate_reason=GateReason.NOT_DERMOSCOPIC))
    prediction.refresh_from_db()

    assert prediction.status == PredictionStatus.DONE
    assert prediction.gate_reason == "not_dermoscopic"
    assert prediction.needs_better_image
    assert prediction.high_risk is False
    # The raw score is kept, to be shown on request.
    assert prediction.probability == pytest.approx(0.9)
    assert prediction.heatmap
    event = AuditEvent.objects.get(action=AuditAction.PREDICTION_SCORED)
    assert event.data["gate_reason"] == "not_dermoscopic"
    assert event.data["high_risk"] is False


def test_a_gated_image_is_recorded_below_the_threshold_if_the_classifier_says_high_risk():
    prediction = PredictionFactory.create()
    classifier = StubClassifier(probability=0.9)
    # A classifier that forgot the rule: the service still never flags a gated image.
    results = [
        StubResult(0.9, True, "malignant", "stub-1", gate_reason=GateReason.TOO_DARK, heatmap=None)
    ]
    classifier.predict = lambda images: results  # type: ignore[method-assign]
    drain(classifier)
    prediction.refresh_from_db()
    assert (prediction.high_risk, prediction.gate_reason) == (False, "too_dark")
    assert not prediction.heatmap


def test_a_passed_image_has_a_blank_reason():
    prediction = PredictionFactory.create()
    drain(StubClassifier(probability=0.9))
    prediction.refresh_from_db()
    assert prediction.gate_reason == ""
    assert not prediction.needs_better_image
    assert prediction.high_risk is True


def test_a_case_with_a_gated_image_waits_for_a_better_image_not_as_not_flagged():
    prediction = PredictionFactory.create()
    drain(StubClassifier(probability=0.01, gate_reason=GateReason.TOO_BLURRED))
    case = prediction.image.case
    case.refresh_from_db()
    assert case.review_state == ReviewState.NEEDS_IMAGE
    assert case.flagged_at is not None
    # Its probability is not a risk, so it ranks nothing.
    assert case.top_probability is None


def test_a_reviewers_decision_takes_the_case_out_of_the_bucket(reviewer):
    prediction = PredictionFactory.create()
    drain(StubClassifier(probability=0.9, gate_reason=GateReason.NOT_DERMOSCOPIC))
    prediction.refresh_from_db()
    case = prediction.image.case

    review_create(case=case, prediction=prediction, reviewer=reviewer, decision=Decision.FOLLOW_UP)
    case.refresh_from_db()
    assert case.review_state == ReviewState.REVIEWED


def test_a_flagged_score_awaiting_review_comes_before_the_need_for_a_better_image(reviewer):
    flagged = PredictionFactory.create()
    drain(StubClassifier(probability=0.9))
    gated = PredictionFactory.create(image__case=flagged.image.case)
    drain(StubClassifier(probability=0.9, gate_reason=GateReason.TOO_DARK))
    case = flagged.image.case
    case.refresh_from_db()
    assert case.review_state == ReviewState.UNREVIEWED
    assert case.top_probability == pytest.approx(0.9)

    flagged.refresh_from_db()
    review_create(case=case, prediction=flagged, reviewer=reviewer, decision=Decision.AGREE)
    case.refresh_from_db()
    assert case.review_state == ReviewState.NEEDS_IMAGE

    gated.refresh_from_db()
    review_create(case=case, prediction=gated, reviewer=reviewer, decision=Decision.FOLLOW_UP)
    case.refresh_from_db()
    assert case.review_state == ReviewState.REVIEWED


def test_a_heatmap_that_cannot_be_stored_leaves_the_row_to_be_retried(monkeypatch, media_root):
    prediction = PredictionFactory.create()
    image_files = stored_files(media_root)

    def refuse(*args: object, **kwargs: object) -> str:
        raise ConnectionError("storage unreachable")

    monkeypatch.setattr(default_storage, "save", refuse)
    drain(StubClassifier())
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.PENDING
    assert "storage unreachable" in prediction.error_message
    assert stored_files(media_root) == image_files


def test_a_heatmap_whose_score_was_not_recorded_is_deleted(monkeypatch, media_root):
    prediction = PredictionFactory.create()
    image_files = stored_files(media_root)

    def fail(**kwargs: object) -> dict[int, bool]:
        raise DatabaseError("connection lost")

    monkeypatch.setattr(services, "prediction_complete_many", fail)
    with pytest.raises(DatabaseError):
        drain(StubClassifier())
    assert stored_files(media_root) == image_files
    prediction.refresh_from_db()
    assert not prediction.heatmap


def test_the_heatmap_of_a_row_another_worker_reclaimed_is_deleted(media_root):
    prediction = PredictionFactory.create()
    image_files = stored_files(media_root)
    (claimed,) = predictions_claim(limit=1)
    assert claimed.started_at is not None
    # Another worker took the row over meanwhile: its claim has a later start time.
    Prediction.objects.filter(pk=prediction.pk).update(
        started_at=claimed.started_at + timedelta(minutes=5)
    )
    classifier = StubClassifier()
    forward: Future[services.ForwardResults] = Future()
    forward.set_result((list(classifier.predict([b""])), 1))

    services._batch_settle(classifier, [claimed], forward)

    assert stored_files(media_root) == image_files
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.RUNNING
    assert not prediction.heatmap
