"""Batched scoring: one task scores several pending predictions, each row settled on its own."""

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
from webapp.scoring.services import (
    PredictionScore,
    ScoringOutcome,
    prediction_claim_pending,
    prediction_complete_many,
    prediction_run,
)

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


def run(prediction: Prediction, classifier: StubClassifier, batch_size: int) -> ScoringOutcome:
    return prediction_run(
        prediction_id=prediction.pk, classifier_loader=lambda: classifier, batch_size=batch_size
    )


def statuses(predictions: Sequence[Prediction]) -> list[str]:
    return [Prediction.objects.get(pk=p.pk).status for p in predictions]


def test_it_scores_pending_predictions_in_one_forward_pass():
    predictions = PredictionFactory.create_batch(5)
    classifier = RecordingClassifier()
    assert run(predictions[2], classifier, batch_size=16) is ScoringOutcome.DONE
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


def test_it_claims_no_more_than_the_batch_size_oldest_first(settings):
    settings.SCORING_DRAIN_BATCHES = 1
    predictions = PredictionFactory.create_batch(6)
    classifier = RecordingClassifier()
    run(predictions[5], classifier, batch_size=3)
    assert classifier.batches == [3]
    # Its own row, then the two oldest others; the rest wait for their own tasks.
    assert statuses(predictions) == [
        PredictionStatus.DONE,
        PredictionStatus.DONE,
        PredictionStatus.PENDING,
        PredictionStatus.PENDING,
        PredictionStatus.PENDING,
        PredictionStatus.DONE,
    ]


def test_a_batch_size_of_one_scores_only_its_own_row():
    predictions = PredictionFactory.create_batch(3)
    classifier = RecordingClassifier()
    run(predictions[1], classifier, batch_size=1)
    assert classifier.batches == [1]
    assert statuses(predictions) == [
        PredictionStatus.PENDING,
        PredictionStatus.DONE,
        PredictionStatus.PENDING,
    ]


def test_the_tasks_of_rows_scored_in_a_batch_skip_them_later():
    predictions = PredictionFactory.create_batch(4)
    classifier = RecordingClassifier()
    assert run(predictions[0], classifier, batch_size=16) is ScoringOutcome.DONE
    for prediction in predictions[1:]:
        assert run(prediction, classifier, batch_size=16) is ScoringOutcome.SKIPPED
    assert classifier.batches == [4]
    assert {p.attempts for p in Prediction.objects.all()} == {1}
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).count() == 4


def test_it_leaves_rows_that_are_running_finished_or_waiting_to_retry_alone():
    own = PredictionFactory.create()
    running = PredictionFactory.create(status=PredictionStatus.RUNNING, started_at=timezone.now())
    done = PredictionFactory.create(done=True)
    retrying = PredictionFactory.create(attempts=1, error_message="Attempt 1 failed")
    classifier = RecordingClassifier()
    run(own, classifier, batch_size=16)
    assert classifier.batches == [1]
    assert statuses([running, done, retrying]) == [
        PredictionStatus.RUNNING,
        PredictionStatus.DONE,
        PredictionStatus.PENDING,
    ]


def test_an_undecodable_image_fails_only_its_own_row():
    good = PredictionFactory.create_batch(3)
    bad = PredictionFactory.create()
    bad.image.file.save("bad.jpg", ContentFile(NOT_AN_IMAGE), save=True)
    classifier = RecordingClassifier(probability=0.9)
    assert run(good[0], classifier, batch_size=16) is ScoringOutcome.DONE
    assert statuses([*good, bad]) == [PredictionStatus.DONE] * 3 + [PredictionStatus.FAILED]
    bad.refresh_from_db()
    assert "could not be decoded" in bad.error_message
    # The good images were still scored together, after the bad one was found.
    assert classifier.batches[-1] == 3
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_FAILED).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).count() == 3


def test_a_bad_image_that_is_the_tasks_own_fails_it_and_scores_the_rest():
    bad = PredictionFactory.create()
    bad.image.file.save("bad.jpg", ContentFile(NOT_AN_IMAGE), save=True)
    good = PredictionFactory.create_batch(2)
    classifier = RecordingClassifier()
    assert run(bad, classifier, batch_size=16) is ScoringOutcome.FAILED
    assert statuses([bad, *good]) == [PredictionStatus.FAILED] + [PredictionStatus.DONE] * 2


def test_an_unreadable_file_is_retried_without_holding_back_the_batch():
    good = PredictionFactory.create()
    missing = PredictionFactory.create()
    missing.image.file.delete(save=False)
    classifier = RecordingClassifier()
    assert run(good, classifier, batch_size=16) is ScoringOutcome.DONE
    missing.refresh_from_db()
    assert missing.status == PredictionStatus.PENDING
    assert missing.attempts == 1
    assert "will retry" in missing.error_message
    assert classifier.batches == [1]


def test_a_transient_error_releases_every_row_of_the_batch_for_a_retry():
    predictions = PredictionFactory.create_batch(3)
    classifier = RecordingClassifier(error=ConnectionError("storage unreachable"))
    assert run(predictions[0], classifier, batch_size=16) is ScoringOutcome.RETRY
    for prediction in Prediction.objects.all():
        assert prediction.status == PredictionStatus.PENDING
        assert prediction.attempts == 1
        assert "storage unreachable" in prediction.error_message


def test_a_batch_puts_each_flagged_case_in_the_queue():
    predictions = PredictionFactory.create_batch(3)
    run(predictions[0], RecordingClassifier(probability=0.95), batch_size=16)
    for prediction in predictions:
        case = prediction.image.case
        case.refresh_from_db()
        assert case.review_state == "unreviewed"
        assert case.top_probability == pytest.approx(0.95)


def test_claiming_pending_rows_is_a_conditional_state_change():
    predictions = PredictionFactory.create_batch(3)
    first = prediction_claim_pending(limit=2)
    assert first == [predictions[0].pk, predictions[1].pk]
    # Claimed rows are running now: a second claim finds only the one left.
    assert prediction_claim_pending(limit=5) == [predictions[2].pk]
    assert prediction_claim_pending(limit=5) == []
    assert statuses(predictions) == [PredictionStatus.RUNNING] * 3


def test_the_task_scores_a_burst_in_batches_from_the_setting(monkeypatch, settings):
    settings.SCORING_BATCH_SIZE = 4
    classifier = RecordingClassifier()
    monkeypatch.setattr(tasks, "classifier_get", lambda: classifier)
    predictions = PredictionFactory.create_batch(10)
    outcomes = [tasks.prediction_score.apply(args=(p.pk,)).get() for p in predictions]
    # The first task drains the burst batch by batch; the other tasks find their rows done.
    assert classifier.batches == [4, 4, 2]
    assert outcomes.count("done") == 1
    assert outcomes.count("skipped") == 9
    assert statuses(predictions) == [PredictionStatus.DONE] * 10


def test_a_task_goes_on_scoring_batches_while_rows_are_pending():
    predictions = PredictionFactory.create_batch(10)
    classifier = RecordingClassifier()
    assert run(predictions[0], classifier, batch_size=4) is ScoringOutcome.DONE
    assert classifier.batches == [4, 4, 2]
    assert statuses(predictions) == [PredictionStatus.DONE] * 10
    assert {p.attempts for p in Prediction.objects.all()} == {1}
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).count() == 10


def test_a_task_stops_after_the_drain_limit_and_leaves_the_rest_pending(settings):
    settings.SCORING_DRAIN_BATCHES = 2
    predictions = PredictionFactory.create_batch(10)
    classifier = RecordingClassifier()
    run(predictions[0], classifier, batch_size=3)
    assert classifier.batches == [3, 3]
    assert statuses(predictions).count(PredictionStatus.DONE) == 6
    assert statuses(predictions).count(PredictionStatus.PENDING) == 4


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

    def complete_many(*, scores: Sequence[PredictionScore]) -> dict[int, bool]:
        if not overlapped:
            # Sequential scoring would start batch 2 only after this returns: the wait times out.
            overlapped.append(second_forward_started.wait(timeout=5))
        return real_complete_many(scores=scores)

    monkeypatch.setattr(services, "prediction_complete_many", complete_many)
    predictions = PredictionFactory.create_batch(6)
    classifier = SignallingClassifier()
    run(predictions[0], classifier, batch_size=3)
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

    classifier = SecondBatchFails()
    assert run(predictions[0], classifier, batch_size=3) is ScoringOutcome.DONE
    assert statuses(predictions) == [PredictionStatus.DONE] * 3 + [PredictionStatus.PENDING] * 3
    for prediction in Prediction.objects.filter(status=PredictionStatus.PENDING):
        assert prediction.attempts == 1
        assert "model server went away" in prediction.error_message


def test_a_batchs_queries_do_not_grow_with_its_size_or_its_cases():
    def queries_to_score(images: int, *, cases: int) -> int:
        case_list = CaseFactory.create_batch(cases)
        first, *_ = [
            PredictionFactory.create(image__case=case_list[i % cases]) for i in range(images)
        ]
        with CaptureQueriesContext(connection) as queries:
            run(first, RecordingClassifier(probability=0.9), batch_size=16)
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
    now = timezone.now()
    claimed = prediction_claim_pending(limit=3, now=now)
    rows = list(Prediction.objects.select_related("image__case").filter(pk__in=claimed))
    # Another worker took the middle row over (its claim looked stale) before this one finished.
    Prediction.objects.filter(pk=predictions[1].pk).update(started_at=timezone.now())
    scores = [
        PredictionScore(
            prediction=row,
            probability=0.7,
            high_risk=True,
            label="malignant",
            model_version="stub-1",
            model_name="Stub classifier",
            threshold=0.5,
            inference_ms=5,
        )
        for row in rows
    ]
    completed = prediction_complete_many(scores=scores)
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


def test_each_row_of_a_mixed_batch_keeps_its_own_score():
    predictions = PredictionFactory.create_batch(5)
    claimed = prediction_claim_pending(limit=5, now=timezone.now())
    rows = Prediction.objects.select_related("image__case").in_bulk(claimed)
    probabilities = [0.12, 0.91, 0.35, 0.77, 0.5]
    scores = [
        PredictionScore(
            prediction=rows[prediction.pk],
            probability=probability,
            high_risk=probability >= 0.5,
            label="malignant" if probability >= 0.5 else "benign",
            model_version="stub-1",
            model_name="Stub classifier",
            threshold=0.5,
            inference_ms=9 if prediction is predictions[-1] else 5,
        )
        for prediction, probability in zip(predictions, probabilities, strict=True)
    ]
    with CaptureQueriesContext(connection) as queries:
        prediction_complete_many(scores=scores)
    stored = Prediction.objects.in_bulk([p.pk for p in predictions])
    for score in scores:
        row = stored[score.prediction.pk]
        assert row.status == PredictionStatus.DONE
        assert (row.probability, row.high_risk, row.label, row.inference_ms) == (
            score.probability,
            score.high_risk,
            score.label,
            score.inference_ms,
        )
    updates = [q for q in queries if q["sql"].startswith('UPDATE "scoring_prediction"')]
    # Rows that differ only in probability share one statement: not flagged, flagged, and the
    # flagged row with its own timing.
    assert len(updates) == 3


def test_deliveries_of_rows_this_process_finished_skip_without_a_query():
    predictions = PredictionFactory.create_batch(5)
    classifier = RecordingClassifier()
    run(predictions[0], classifier, batch_size=16)
    with CaptureQueriesContext(connection) as queries:
        outcomes = [run(p, classifier, batch_size=16) for p in predictions[1:]]
    assert outcomes == [ScoringOutcome.SKIPPED] * 4
    assert len(queries) == 0
    assert classifier.batches == [5]


def test_rows_left_pending_by_a_drain_are_not_remembered_as_finished(settings):
    settings.SCORING_DRAIN_BATCHES = 1
    predictions = PredictionFactory.create_batch(4)
    classifier = RecordingClassifier()
    run(predictions[0], classifier, batch_size=2)
    # The two rows the drain did not reach are still scored by their own deliveries.
    assert run(predictions[2], classifier, batch_size=1) is ScoringOutcome.DONE
    assert run(predictions[3], classifier, batch_size=1) is ScoringOutcome.DONE
    assert classifier.batches == [2, 1, 1]


def test_the_memory_of_finished_rows_is_bounded(monkeypatch):
    monkeypatch.setattr(services, "FINISHED_MEMORY", 3)
    monkeypatch.setattr(services, "_finished_here", services.OrderedDict())
    services._remember_finished(range(10))
    assert list(services._finished_here) == [7, 8, 9]
