from datetime import timedelta

import pytest
from django.utils import timezone

from inference import ImageDecodeError
from tests.webapp.conftest import StubClassifier
from tests.webapp.factories import PredictionFactory
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import ReviewState
from webapp.scoring import services
from webapp.scoring.models import Prediction, PredictionStatus
from webapp.scoring.services import predictions_claim, predictions_drain

pytestmark = pytest.mark.django_db


def drain(classifier: StubClassifier) -> int:
    return predictions_drain(classifier_loader=lambda: classifier)


def backdate_claim(prediction: Prediction, ago: timedelta) -> None:
    Prediction.objects.filter(pk=prediction.pk).update(started_at=timezone.now() - ago)


def test_it_records_the_score_and_model_on_the_row():
    prediction = PredictionFactory.create()
    assert drain(StubClassifier(probability=0.2)) == 1
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.DONE
    assert prediction.probability == pytest.approx(0.2)
    assert prediction.high_risk is False
    assert prediction.threshold == 0.5
    assert (prediction.model_name, prediction.model_version) == ("Stub classifier", "stub-1")
    assert prediction.attempts == 1
    assert prediction.inference_ms is not None
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).count() == 1


def test_it_puts_a_flagged_case_in_the_review_queue():
    prediction = PredictionFactory.create()
    drain(StubClassifier(probability=0.9))
    case = prediction.image.case
    case.refresh_from_db()
    assert case.review_state == ReviewState.UNREVIEWED
    assert case.top_probability == pytest.approx(0.9)
    assert case.flagged_at is not None


def test_it_leaves_a_low_score_out_of_the_queue():
    prediction = PredictionFactory.create()
    drain(StubClassifier(probability=0.1))
    prediction.image.case.refresh_from_db()
    assert prediction.image.case.review_state == ReviewState.NOT_FLAGGED


def test_a_second_wake_up_never_scores_a_row_twice():
    prediction = PredictionFactory.create()
    classifier = StubClassifier()
    assert drain(classifier) == 1
    assert drain(classifier) == 0
    assert classifier.calls == 1
    assert Prediction.objects.get(pk=prediction.pk).attempts == 1


def test_it_lets_only_one_worker_claim_a_row():
    prediction = PredictionFactory.create()
    assert predictions_claim(limit=5) == [prediction]
    assert predictions_claim(limit=5) == []


def test_it_leaves_a_row_alone_while_another_workers_claim_is_fresh():
    PredictionFactory.create(status=PredictionStatus.RUNNING, started_at=timezone.now(), attempts=1)
    classifier = StubClassifier()
    assert drain(classifier) == 0
    assert classifier.calls == 0


def test_it_reclaims_a_row_left_running_by_a_dead_worker(settings):
    prediction = PredictionFactory.create(status=PredictionStatus.RUNNING, attempts=1)
    backdate_claim(prediction, timedelta(seconds=settings.SCORING_STALE_AFTER_SECONDS + 5))
    assert drain(StubClassifier()) == 1
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.DONE
    assert prediction.attempts == 2


def test_it_fails_a_row_whose_scoring_was_interrupted_on_every_attempt(settings):
    # A poison image: each attempt killed its worker before the row could be settled.
    prediction = PredictionFactory.create(
        status=PredictionStatus.RUNNING, attempts=services.MAX_ATTEMPTS
    )
    backdate_claim(prediction, timedelta(seconds=settings.SCORING_STALE_AFTER_SECONDS + 5))
    classifier = StubClassifier()
    assert drain(classifier) == 0
    assert classifier.calls == 0
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.FAILED
    assert f"interrupted {services.MAX_ATTEMPTS} times" in prediction.error_message
    assert prediction.finished_at is not None
    assert AuditEvent.objects.filter(
        action=AuditAction.PREDICTION_FAILED, data__prediction_id=prediction.pk
    ).exists()


def test_it_fails_at_once_on_an_undecodable_image():
    prediction = PredictionFactory.create()
    drain(StubClassifier(error=ImageDecodeError("truncated file")))
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.FAILED
    assert "could not be decoded" in prediction.error_message
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_FAILED).count() == 1


def test_it_releases_the_row_for_a_later_retry_after_a_transient_error():
    prediction = PredictionFactory.create()
    classifier = StubClassifier(error=ConnectionError("storage unreachable"))
    assert drain(classifier) == 1
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.PENDING
    assert "storage unreachable" in prediction.error_message
    # Not at once: the next wake-up within the retry delay leaves it waiting.
    assert drain(classifier) == 0
    backdate_claim(prediction, services.RETRY_DELAY + timedelta(seconds=1))
    assert drain(StubClassifier()) == 1
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.DONE
    assert prediction.attempts == 2


def test_it_fails_for_good_after_the_last_attempt(monkeypatch):
    monkeypatch.setattr(services, "MAX_ATTEMPTS", 2)
    prediction = PredictionFactory.create()
    classifier = StubClassifier(error=RuntimeError("out of memory"))
    drain(classifier)
    assert Prediction.objects.get(pk=prediction.pk).status == PredictionStatus.PENDING
    backdate_claim(prediction, services.RETRY_DELAY + timedelta(seconds=1))
    drain(classifier)
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.FAILED
    assert prediction.error_message.startswith("Scoring failed after 2 attempts.")
    assert "out of memory" in prediction.error_message


def test_it_records_a_model_that_will_not_load_as_a_failure(monkeypatch):
    monkeypatch.setattr(services, "MAX_ATTEMPTS", 1)

    def broken_loader() -> StubClassifier:
        raise RuntimeError("model artifact missing")

    prediction = PredictionFactory.create()
    assert predictions_drain(classifier_loader=broken_loader) == 1
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.FAILED
    assert "model artifact missing" in prediction.error_message


def test_a_wake_up_with_nothing_due_loads_no_model():
    PredictionFactory.create(done=True)

    def loader() -> StubClassifier:
        raise AssertionError("the model was loaded for nothing")

    assert predictions_drain(classifier_loader=loader) == 0
