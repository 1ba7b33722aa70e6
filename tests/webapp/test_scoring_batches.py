"""Batched scoring: a drain scores pending predictions in batches, each row settled on its own."""

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inference import ImageDecodeError
from tests.webapp.conftest import StubClassifier, StubResult
from tests.webapp.factories import CaseFactory, PredictionFactory
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import Case, ReviewState
from webapp.scoring import services, tasks
from webapp.scoring.models import Prediction, PredictionStatus
from webapp.scoring.services import prediction_complete_many, predictions_claim, predictions_drain

pytestmark = pytest.mark.django_db

NOT_AN_IMAGE = b"this is not an image"


class RecordingClassifier(StubClassifier):
    """A stub that remembers each batch and, like the real one, rejects undecodable bytes."""

    def __init__(self, probability: float = 0.8, error: Exception | None = None) -> None:
        super().__init__(probability=probability, error=error)
        self.batches: list[int] = []

    def predict(self, images: Sequence[Any]) -> list[StubResult]:
        self.batches.append(len(images))
        if any(image == NOT_AN_IMAGE for image in images):
            self.calls += 1
            raise ImageDecodeError("not a readable image")
        return super().predict(images)


def drain(classifier: StubClassifier, batch_size: int) -> int:
    return predictions_drain(classifier_loader=lambda: classifier, batch_size=batch_size)


def statuses(predictions: Sequence[Prediction]) -> list[str]:
    return [Prediction.objects.get(pk=p.pk).status for p in predictions]


def scores(rows: Sequence[Prediction], probabilities: Sequence[float]) -> list[Any]:
    """What a forward pass gives each claimed row, ready for prediction_complete_many."""
    return [
        (row, StubResult(p, p >= 0.5, "malignant" if p >= 0.5 else "benign", "stub-1"))
        for row, p in zip(rows, probabilities, strict=True)
    ]


def test_it_scores_pending_predictions_in_one_forward_pass():
    predictions = PredictionFactory.create_batch(5)
    classifier = RecordingClassifier()
    assert drain(classifier, batch_size=16) == 5
    assert classifier.batches == [5]
    assert statuses(predictions) == [PredictionStatus.DONE] * 5
    for prediction in Prediction.objects.all():
        assert prediction.attempts == 1
        assert prediction.started_at is not None
        assert prediction.finished_at is not None
        assert prediction.inference_ms is not None
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).count() == 5
    # Scored together, started together.
    assert len({p.started_at for p in Prediction.objects.all()}) == 1


def test_it_claims_no_more_than_the_batch_size_oldest_first():
    predictions = PredictionFactory.create_batch(5)
    assert predictions_claim(limit=3) == predictions[:3]
    assert statuses(predictions) == [PredictionStatus.RUNNING] * 3 + [PredictionStatus.PENDING] * 2


def test_a_batch_size_of_one_scores_one_image_per_forward_pass():
    predictions = PredictionFactory.create_batch(3)
    classifier = RecordingClassifier()
    assert drain(classifier, batch_size=1) == 3
    assert classifier.batches == [1, 1, 1]
    assert statuses(predictions) == [PredictionStatus.DONE] * 3


def test_it_goes_on_scoring_batches_until_none_are_pending():
    predictions = PredictionFactory.create_batch(10)
    classifier = RecordingClassifier()
    assert drain(classifier, batch_size=4) == 10
    assert classifier.batches == [4, 4, 2]
    assert statuses(predictions) == [PredictionStatus.DONE] * 10
    assert {p.attempts for p in Prediction.objects.all()} == {1}
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).count() == 10


def test_the_task_scores_a_burst_in_batches_from_the_setting(monkeypatch, settings):
    settings.SCORING_BATCH_SIZE = 4
    classifier = RecordingClassifier()
    monkeypatch.setattr(tasks, "classifier_get", lambda: classifier)
    predictions = PredictionFactory.create_batch(10)
    # One wake-up per upload: the first drains the burst, the others find nothing due.
    drained = [tasks.predictions_score.apply().get() for _ in predictions]
    assert drained == [10] + [0] * 9
    assert classifier.batches == [4, 4, 2]
    assert statuses(predictions) == [PredictionStatus.DONE] * 10


def test_it_leaves_rows_that_are_running_finished_or_waiting_to_retry_alone():
    own = PredictionFactory.create()
    running = PredictionFactory.create(
        status=PredictionStatus.RUNNING, started_at=timezone.now(), attempts=1
    )
    done = PredictionFactory.create(done=True)
    retrying = PredictionFactory.create(
        attempts=1, started_at=timezone.now(), error_message="Attempt 1 failed"
    )
    classifier = RecordingClassifier()
    assert drain(classifier, batch_size=16) == 1
    assert classifier.batches == [1]
    assert statuses([own, running, done, retrying]) == [
        PredictionStatus.DONE,
        PredictionStatus.RUNNING,
        PredictionStatus.DONE,
        PredictionStatus.PENDING,
    ]


def test_an_undecodable_image_fails_only_its_own_row():
    good = PredictionFactory.create_batch(3)
    bad = PredictionFactory.create()
    bad.image.file.save("bad.jpg", ContentFile(NOT_AN_IMAGE), save=True)
    classifier = RecordingClassifier(probability=0.9)
    drain(classifier, batch_size=16)
    assert statuses([*good, bad]) == [PredictionStatus.DONE] * 3 + [PredictionStatus.FAILED]
    bad.refresh_from_db()
    assert "could not be decoded" in bad.error_message
    # Tried together first, then one by one to find the bad one.
    assert classifier.batches == [4, 1, 1, 1, 1]
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_FAILED).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).count() == 3


def test_an_unreadable_file_is_retried_without_holding_back_the_batch():
    good = PredictionFactory.create()
    missing = PredictionFactory.create()
    missing.image.file.delete(save=False)
    classifier = RecordingClassifier()
    drain(classifier, batch_size=16)
    assert statuses([good]) == [PredictionStatus.DONE]
    missing.refresh_from_db()
    assert missing.status == PredictionStatus.PENDING
    assert missing.attempts == 1
    assert "will retry" in missing.error_message
    assert classifier.batches == [1]


def test_a_transient_error_releases_every_row_of_the_batch_for_a_retry():
    PredictionFactory.create_batch(3)
    classifier = RecordingClassifier(error=ConnectionError("storage unreachable"))
    drain(classifier, batch_size=16)
    for prediction in Prediction.objects.all():
        assert prediction.status == PredictionStatus.PENDING
        assert prediction.attempts == 1
        assert "storage unreachable" in prediction.error_message


def test_a_batch_puts_each_flagged_case_in_the_queue():
    predictions = PredictionFactory.create_batch(3)
    drain(RecordingClassifier(probability=0.95), batch_size=16)
    for prediction in predictions:
        case = prediction.image.case
        case.refresh_from_db()
        assert case.review_state == "unreviewed"
        assert case.top_probability == pytest.approx(0.95)


def test_claiming_is_a_conditional_state_change():
    predictions = PredictionFactory.create_batch(3)
    assert predictions_claim(limit=2) == predictions[:2]
    # Claimed rows are running now: a second claim finds only the one left.
    assert predictions_claim(limit=5) == predictions[2:]
    assert predictions_claim(limit=5) == []
    assert statuses(predictions) == [PredictionStatus.RUNNING] * 3


def test_the_next_batch_is_in_the_model_while_the_previous_one_is_recorded(monkeypatch):
    """Pipelining: batch 1's results are written while batch 2's forward pass runs."""
    second_forward_started = threading.Event()
    overlapped: list[bool] = []

    class SignallingClassifier(RecordingClassifier):
        def predict(self, images: Sequence[Any]) -> list[StubResult]:
            if self.batches:
                second_forward_started.set()
            return super().predict(images)

    real_complete_many = services.prediction_complete_many

    def complete_many(**kwargs: Any) -> dict[int, bool]:
        if not overlapped:
            # Sequential scoring would start batch 2 only after this returns: the wait times out.
            overlapped.append(second_forward_started.wait(timeout=5))
        return real_complete_many(**kwargs)

    monkeypatch.setattr(services, "prediction_complete_many", complete_many)
    predictions = PredictionFactory.create_batch(6)
    classifier = SignallingClassifier()
    drain(classifier, batch_size=3)
    assert overlapped == [True]
    assert classifier.batches == [3, 3]
    assert statuses(predictions) == [PredictionStatus.DONE] * 6


def test_a_failing_forward_pass_in_a_drain_releases_only_its_own_batch():
    predictions = PredictionFactory.create_batch(6)

    class SecondBatchFails(RecordingClassifier):
        def predict(self, images: Sequence[Any]) -> list[StubResult]:
            if self.batches:
                self.batches.append(len(images))
                raise ConnectionError("model server went away")
            return super().predict(images)

    drain(SecondBatchFails(), batch_size=3)
    assert statuses(predictions) == [PredictionStatus.DONE] * 3 + [PredictionStatus.PENDING] * 3
    for prediction in Prediction.objects.filter(status=PredictionStatus.PENDING):
        assert prediction.attempts == 1
        assert "model server went away" in prediction.error_message


def test_a_drain_hands_the_rest_on_once_its_time_is_up(monkeypatch):
    monkeypatch.setattr(services, "DRAIN_SECONDS", 0)
    woken: list[bool] = []

    def wake() -> bool:
        woken.append(True)
        return True

    monkeypatch.setattr(services, "scoring_wake", wake)
    predictions = PredictionFactory.create_batch(5)
    assert drain(RecordingClassifier(), batch_size=2) == 2
    assert statuses(predictions).count(PredictionStatus.PENDING) == 3
    assert woken == [True]


def test_a_batchs_queries_do_not_grow_with_its_size_or_its_cases():
    def queries_to_score(images: int, *, cases: int) -> int:
        case_list = CaseFactory.create_batch(cases)
        for i in range(images):
            PredictionFactory.create(image__case=case_list[i % cases])
        with CaptureQueriesContext(connection) as queries:
            drain(RecordingClassifier(probability=0.9), batch_size=16)
        scored = Prediction.objects.filter(image__case__in=case_list)
        assert set(statuses(list(scored))) == {PredictionStatus.DONE}
        assert {c.review_state for c in Case.objects.filter(pk__in=[c.pk for c in case_list])} == {
            ReviewState.UNREVIEWED
        }
        return len(queries)

    # Settling, history and the queue refresh are one statement each for the whole batch.
    assert queries_to_score(8, cases=8) == queries_to_score(2, cases=1)


def test_a_row_reclaimed_while_its_batch_was_scoring_is_dropped_alone():
    predictions = PredictionFactory.create_batch(3)
    rows = predictions_claim(limit=3)
    # Another worker took the middle row over (its claim looked stale) before this one finished.
    Prediction.objects.filter(pk=predictions[1].pk).update(started_at=timezone.now())
    completed = prediction_complete_many(
        scored=scores(rows, [0.7] * 3), classifier=StubClassifier(), inference_ms=5
    )
    assert completed == {
        predictions[0].pk: True,
        predictions[1].pk: False,
        predictions[2].pk: True,
    }
    assert statuses(predictions) == [
        PredictionStatus.DONE,
        PredictionStatus.RUNNING,
        PredictionStatus.DONE,
    ]
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).count() == 2


def test_each_row_of_a_mixed_batch_keeps_its_own_score():
    PredictionFactory.create_batch(5)
    rows = predictions_claim(limit=5)
    probabilities = [0.12, 0.91, 0.35, 0.77, 0.5]
    with CaptureQueriesContext(connection) as queries:
        prediction_complete_many(
            scored=scores(rows, probabilities), classifier=StubClassifier(), inference_ms=5
        )
    stored = Prediction.objects.in_bulk([row.pk for row in rows])
    for row, probability in zip(rows, probabilities, strict=True):
        assert stored[row.pk].status == PredictionStatus.DONE
        assert stored[row.pk].probability == probability
        assert stored[row.pk].high_risk == (probability >= 0.5)
        assert stored[row.pk].inference_ms == 5
    updates = [q for q in queries if q["sql"].startswith('UPDATE "scoring_prediction"')]
    # Rows that differ only in probability share one statement: not flagged, and flagged.
    assert len(updates) == 2


@pytest.mark.django_db(transaction=True)
def test_workers_draining_side_by_side_score_each_row_once():
    predictions = PredictionFactory.create_batch(12)
    drained: list[int] = []
    # Each worker's first forward pass waits for the other's: both hold claims at once.
    both_scoring = threading.Barrier(2, timeout=10)

    class MeetingClassifier(RecordingClassifier):
        def predict(self, images: Sequence[Any]) -> list[StubResult]:
            if not self.batches:
                both_scoring.wait()
            return super().predict(images)

    def worker() -> None:
        try:
            drained.append(drain(MeetingClassifier(), batch_size=3))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(drained) == 12
    assert statuses(predictions) == [PredictionStatus.DONE] * 12
    assert {p.attempts for p in Prediction.objects.all()} == {1}
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).count() == 12
