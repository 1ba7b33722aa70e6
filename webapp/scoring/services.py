from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.scoring.classifier import ScoringModel
from webapp.scoring.models import Prediction, PredictionStatus

if TYPE_CHECKING:
    from webapp.cases.models import Image

logger = logging.getLogger(__name__)

# Long enough for the row, short enough never to carry a whole traceback into the page.
ERROR_MESSAGE_LIMIT = 2000


class ScoringOutcome(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"
    RETRY = "retry"  # this attempt failed; the task should be run again later
    BUSY = "busy"  # another worker holds the row; look again once its claim could be stale
    SKIPPED = "skipped"  # nothing to do: already finished, or the row is gone


def prediction_create(*, image: Image) -> Prediction:
    """Create a pending prediction for an image and queue its scoring once the data commits."""
    from webapp.scoring.tasks import prediction_score

    prediction = Prediction.objects.create(image=image, status=PredictionStatus.PENDING)
    # Queued on commit: a worker that picked the task up earlier would not find the row yet.
    transaction.on_commit(partial(prediction_score.delay, prediction.pk))
    return prediction


def prediction_claim(*, prediction_id: int) -> bool:
    """Move a prediction to running for this worker; False if another owns or finished it.

    The conditional update is the lock: of two deliveries of the same task, only one sees a
    row count of 1. A running row whose claim is older than the stale limit belongs to a
    worker that died (its task was redelivered), so it may be claimed again.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.SCORING_STALE_AFTER_SECONDS)
    claimed = (
        Prediction.objects.filter(pk=prediction_id)
        .filter(
            Q(status=PredictionStatus.PENDING)
            | Q(status=PredictionStatus.RUNNING, started_at__lt=stale_before)
        )
        .update(status=PredictionStatus.RUNNING, started_at=now, attempts=F("attempts") + 1)
    )
    return claimed == 1


def prediction_run(
    *, prediction_id: int, classifier_loader: Callable[[], ScoringModel]
) -> ScoringOutcome:
    """Claim a prediction, score its image and record the result or the error on the row."""
    # Imported here so that importing the web app never loads TensorFlow.
    from inference import ImageDecodeError

    if not prediction_claim(prediction_id=prediction_id):
        status = Prediction.objects.filter(pk=prediction_id).values_list("status", flat=True)
        current = status.first()
        if current is None:
            logger.warning("Prediction %s no longer exists; nothing to score", prediction_id)
            return ScoringOutcome.SKIPPED
        return (
            ScoringOutcome.BUSY if current == PredictionStatus.RUNNING else ScoringOutcome.SKIPPED
        )

    prediction = Prediction.objects.select_related("image__case").get(pk=prediction_id)
    try:
        classifier = classifier_loader()
        with prediction.image.file.open("rb") as handle:
            image_bytes = handle.read()
        started = time.perf_counter()
        result = classifier.predict([image_bytes])[0]
        inference_ms = round((time.perf_counter() - started) * 1000)
    except ImageDecodeError as exc:
        # The same bytes will never decode: retrying only delays the answer.
        prediction_fail(prediction=prediction, error=f"The image could not be decoded: {exc}")
        return ScoringOutcome.FAILED
    except Exception as exc:
        logger.exception(
            "Scoring prediction %s failed (attempt %s)", prediction_id, prediction.attempts
        )
        error = f"{type(exc).__name__}: {exc}"
        if prediction.attempts >= settings.SCORING_MAX_ATTEMPTS:
            prediction_fail(
                prediction=prediction,
                error=f"Scoring failed after {prediction.attempts} attempts. {error}",
            )
            return ScoringOutcome.FAILED
        prediction_release(prediction=prediction, error=error)
        return ScoringOutcome.RETRY

    completed = prediction_complete(
        prediction=prediction,
        probability=float(result.probability),
        high_risk=bool(result.high_risk),
        label=str(result.label),
        model_version=str(result.model_version),
        model_name=classifier.display_name,
        threshold=float(classifier.threshold),
        inference_ms=inference_ms,
    )
    return ScoringOutcome.DONE if completed else ScoringOutcome.SKIPPED


@transaction.atomic
def prediction_complete(
    *,
    prediction: Prediction,
    probability: float,
    high_risk: bool,
    label: str,
    model_version: str,
    model_name: str,
    threshold: float,
    inference_ms: int,
) -> bool:
    """Record a score on a running prediction; False if the row was no longer ours."""
    from webapp.reviews.services import case_queue_refresh

    finished_at = timezone.now()
    updated = Prediction.objects.filter(
        pk=prediction.pk, status=PredictionStatus.RUNNING, started_at=prediction.started_at
    ).update(
        status=PredictionStatus.DONE,
        probability=probability,
        high_risk=high_risk,
        label=label,
        model_version=model_version,
        model_name=model_name,
        threshold=threshold,
        inference_ms=inference_ms,
        finished_at=finished_at,
        error_message="",
    )
    if updated != 1:
        logger.warning("Prediction %s was reclaimed while scoring; result dropped", prediction.pk)
        return False
    case = prediction.image.case
    audit_record(
        action=AuditAction.PREDICTION_SCORED,
        actor=None,
        case=case,
        data={
            "image_id": prediction.image_id,
            "prediction_id": prediction.pk,
            "probability": probability,
            "high_risk": high_risk,
            "threshold": threshold,
            "model_version": model_version,
        },
    )
    if high_risk:
        case_queue_refresh(case_id=case.pk)
    return True


@transaction.atomic
def prediction_fail(*, prediction: Prediction, error: str) -> None:
    """Mark a prediction as failed for good, with a message the user will read."""
    Prediction.objects.filter(pk=prediction.pk).update(
        status=PredictionStatus.FAILED,
        error_message=error[:ERROR_MESSAGE_LIMIT],
        finished_at=timezone.now(),
    )
    audit_record(
        action=AuditAction.PREDICTION_FAILED,
        actor=None,
        case=prediction.image.case,
        data={
            "image_id": prediction.image_id,
            "prediction_id": prediction.pk,
            "error": error[:500],
        },
    )


def prediction_release(*, prediction: Prediction, error: str) -> None:
    """Return a running prediction to pending after a failed attempt that will be retried."""
    Prediction.objects.filter(pk=prediction.pk, status=PredictionStatus.RUNNING).update(
        status=PredictionStatus.PENDING,
        error_message=f"Attempt {prediction.attempts} failed, will retry: {error}"[
            :ERROR_MESSAGE_LIMIT
        ],
    )
