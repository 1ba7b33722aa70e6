"""The stale-prediction sweep and broker-outage-safe enqueueing (real Redis, real PostgreSQL)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from benchmarks.support import free_port
from tests.webapp.conftest import api_client
from tests.webapp.factories import CaseFactory, PredictionFactory, jpeg_bytes
from tests.webapp.faults import celery_broker, private_queue, queue_length
from webapp.audit.models import AuditAction, AuditEvent
from webapp.scoring.models import Prediction, PredictionStatus
from webapp.scoring.services import prediction_claim
from webapp.scoring.sweep import prediction_enqueue, prediction_sweep

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(settings):
    if settings.USING_EMBEDDED_BROKER:
        pytest.skip("needs the Redis broker (run through scripts/test.sh)")
    settings.SCORING_SWEEP_PENDING_AFTER_SECONDS = 60
    settings.SCORING_REQUEUE_AFTER_SECONDS = 3600
    settings.SCORING_STALE_AFTER_SECONDS = 600
    with private_queue(settings) as name:
        yield name


def backdate(prediction: Prediction, **fields: timedelta) -> None:
    now = timezone.now()
    Prediction.objects.filter(pk=prediction.pk).update(
        **{name: now - ago for name, ago in fields.items()}
    )


def test_it_queues_a_prediction_whose_task_never_reached_the_broker(queue):
    prediction = PredictionFactory.create()
    backdate(prediction, created_at=timedelta(minutes=5))

    assert prediction_sweep() == 1
    assert queue_length(queue) == 1
    prediction.refresh_from_db()
    assert prediction.enqueued_at is not None


def test_it_never_queues_a_live_task_twice(queue):
    prediction = PredictionFactory.create()
    backdate(prediction, created_at=timedelta(minutes=5))

    assert prediction_sweep() == 1
    assert prediction_sweep() == 0
    assert prediction_enqueue(prediction_id=prediction.pk) is False
    assert queue_length(queue) == 1


def test_it_leaves_a_fresh_upload_to_its_own_commit_hook(queue):
    PredictionFactory.create()
    assert prediction_sweep() == 0
    assert queue_length(queue) == 0


def test_it_requeues_a_task_the_broker_lost(queue):
    prediction = PredictionFactory.create()
    backdate(prediction, created_at=timedelta(hours=3), enqueued_at=timedelta(hours=2))
    assert prediction_sweep() == 1
    assert queue_length(queue) == 1


def test_it_requeues_a_prediction_abandoned_mid_run_by_a_dead_worker(queue):
    prediction = PredictionFactory.create(status=PredictionStatus.RUNNING, attempts=1)
    backdate(
        prediction,
        created_at=timedelta(hours=1),
        enqueued_at=timedelta(hours=1),
        started_at=timedelta(minutes=30),
    )
    assert prediction_sweep() == 1
    assert queue_length(queue) == 1


def test_it_requeues_a_prediction_claimed_in_a_batch_by_a_worker_that_died(queue):
    # A row claimed into another task's batch never had a task of its own sent.
    prediction = PredictionFactory.create(status=PredictionStatus.RUNNING, attempts=1)
    backdate(prediction, created_at=timedelta(hours=1), started_at=timedelta(minutes=30))
    assert Prediction.objects.get(pk=prediction.pk).enqueued_at is None

    assert prediction_sweep() == 1
    assert queue_length(queue) == 1
    # Queued once: the next sweep waits for that task rather than sending another.
    assert prediction_sweep() == 0


def test_it_fails_a_prediction_whose_scoring_was_interrupted_on_every_attempt(queue, settings):
    prediction = PredictionFactory.create(
        status=PredictionStatus.RUNNING, attempts=settings.SCORING_MAX_ATTEMPTS
    )
    backdate(prediction, created_at=timedelta(hours=1), started_at=timedelta(minutes=30))

    assert prediction_sweep() == 0
    assert queue_length(queue) == 0
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.FAILED
    assert f"interrupted {settings.SCORING_MAX_ATTEMPTS} times" in prediction.error_message
    assert prediction.finished_at is not None
    assert AuditEvent.objects.filter(
        action=AuditAction.PREDICTION_FAILED, data__prediction_id=prediction.pk
    ).exists()


def test_a_redelivered_task_does_not_claim_a_prediction_whose_attempts_are_spent(settings):
    prediction = PredictionFactory.create(
        status=PredictionStatus.RUNNING, attempts=settings.SCORING_MAX_ATTEMPTS
    )
    backdate(prediction, started_at=timedelta(hours=1))
    assert prediction_claim(prediction_id=prediction.pk) is False


def test_it_leaves_a_running_prediction_alone_while_its_claim_is_fresh(queue):
    prediction = PredictionFactory.create(status=PredictionStatus.RUNNING, attempts=1)
    backdate(prediction, created_at=timedelta(hours=1), enqueued_at=timedelta(hours=1))
    Prediction.objects.filter(pk=prediction.pk).update(started_at=timezone.now())
    assert prediction_sweep() == 0


def test_it_skips_finished_predictions(queue):
    done = PredictionFactory.create(done=True)
    backdate(done, created_at=timedelta(hours=1))
    assert prediction_sweep() == 0


def test_an_upload_succeeds_and_stays_pending_while_the_broker_is_down(
    queue, clinician, django_capture_on_commit_callbacks
):
    case = CaseFactory.create(created_by=clinician)
    client = api_client(clinician)
    # Nothing listens on this port: every connection attempt is refused.
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                reverse("api:case-images", args=[case.pk]),
                {"files": [_upload()]},
                format="multipart",
            )
        assert response.status_code == 201, response.content
        assert time.monotonic() - started < 3  # the dead broker is not waited for
        prediction = Prediction.objects.get(image__case=case)
        assert prediction.status == PredictionStatus.PENDING
        assert prediction.enqueued_at is None
        # While the broker stays down the sweep leaves the row as it is.
        backdate(prediction, created_at=timedelta(minutes=5))
        assert prediction_sweep() == 0
    # Back up: the next sweep sends it.
    assert prediction_sweep() == 1
    assert queue_length(queue) == 1


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("lesion.jpg", jpeg_bytes(), "image/jpeg")
