"""Wake-ups: what gets scored is decided by the rows, so a lost wake-up or a broker outage
delays scoring but never loses it (real Redis, real PostgreSQL)."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from benchmarks.support import free_port
from tests.webapp.conftest import StubClassifier, api_client
from tests.webapp.factories import CaseFactory, jpeg_bytes
from tests.webapp.faults import celery_broker, private_queue, queue_length
from webapp.config.celery import app
from webapp.scoring import services, tasks
from webapp.scoring.models import Prediction, PredictionStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(settings):
    if settings.USING_EMBEDDED_BROKER:
        pytest.skip("needs the Redis broker (run through scripts/test.sh)")
    with private_queue(settings) as name:
        yield name


def upload(client, case_id: int, count: int = 1):
    files = [
        SimpleUploadedFile(f"lesion-{index}.jpg", jpeg_bytes(), "image/jpeg")
        for index in range(count)
    ]
    return client.post(
        reverse("api:case-images", args=[case_id]), {"files": files}, format="multipart"
    )


def test_an_upload_sends_one_wake_up_once_it_commits(
    queue, clinician, django_capture_on_commit_callbacks
):
    case = CaseFactory.create(created_by=clinician)
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(api_client(clinician), case.pk, count=3).status_code == 201
    assert queue_length(queue) == 1


def test_beat_wakes_a_worker_periodically(settings):
    [entry] = app.conf.beat_schedule.values()
    assert entry["task"] == services.WAKE_TASK == tasks.predictions_score.name
    assert entry["schedule"] == settings.SCORING_WAKE_INTERVAL_SECONDS


def test_an_upload_while_the_broker_is_down_is_kept_and_scored_by_a_later_wake_up(
    queue, clinician, django_capture_on_commit_callbacks, monkeypatch
):
    case = CaseFactory.create(created_by=clinician)
    # Nothing listens on this port: every connection attempt is refused.
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True):
            response = upload(api_client(clinician), case.pk)
        assert response.status_code == 201, response.content
        assert time.monotonic() - started < 3  # the dead broker is not waited for
        assert services.scoring_wake() is False
    prediction = Prediction.objects.get(image__case=case)
    assert prediction.status == PredictionStatus.PENDING
    assert queue_length(queue) == 0  # its wake-up was lost with the broker

    # Back up: the next wake-up, whoever sends it (beat, another upload), drains the row,
    # though no message ever named it.
    monkeypatch.setattr(tasks, "classifier_get", lambda: StubClassifier(probability=0.3))
    assert tasks.predictions_score.apply().get() == 1
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.DONE
    assert prediction.attempts == 1
