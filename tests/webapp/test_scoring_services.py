from datetime import timedelta

import pytest
from django.utils import timezone

from inference import ImageDecodeError
from tests.webapp.conftest import StubClassifier
from tests.webapp.factories import PredictionFactory
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import ReviewState
from webapp.scoring.models import Prediction, PredictionStatus
from webapp.scoring.services import ScoringOutcome, prediction_claim, prediction_run

pytestmark = pytest.mark.django_db


def run(prediction: Prediction, classifier: StubClassifier) -> ScoringOutcome:
    return prediction_run(prediction_id=prediction.pk, classifier_loader=lambda: classifier)


def test_it_records_the_score_and_model_on_the_row():
    prediction = PredictionFactory.create()
    assert run(prediction, StubClassifier(probability=0.2)) is ScoringOutcome.DONE
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
    run(prediction, StubClassifier(probability=0.9))
    case = prediction.image.case
    case.refresh_from_db()
    assert case.review_state == ReviewState.UNREVIEWED
    assert case.top_probability == pytest.approx(0.9)
    assert case.flagged_at is not None


def test_it_leaves_a_low_score_out_of_the_queue():
    prediction = PredictionFactory.create()
    run(prediction, StubClassifier(probability=0.1))
    prediction.image.case.refresh_from_db()
    assert prediction.image.case.review_state == ReviewState.NOT_FLAGGED


def test_it_never_scores_a_redelivered_task_twice():
    prediction = PredictionFactory.create()
    classifier = StubClassifier()
    assert run(prediction, classifier) is ScoringOutcome.DONE
    assert run(prediction, classifier) is ScoringOutcome.SKIPPED
    assert classifier.calls == 1
    assert Prediction.objects.get(pk=prediction.pk).attempts == 1


def test_it_lets_only_one_worker_claim_a_row():
    prediction = PredictionFactory.create()
    assert prediction_claim(prediction_id=prediction.pk) is True
    assert prediction_claim(prediction_id=prediction.pk) is False


def test_it_answers_busy_while_another_worker_holds_the_row():
    prediction = PredictionFactory.create(
        status=PredictionStatus.RUNNING, started_at=timezone.now()
    )
    classifier = StubClassifier()
    assert run(prediction, classifier) is ScoringOutcome.BUSY
    assert classifier.calls == 0


def test_it_reclaims_a_row_left_running_by_a_dead_worker(settings):
    started = timezone.now() - timedelta(seconds=settings.SCORING_STALE_AFTER_SECONDS + 5)
    prediction = PredictionFactory.create(
        status=PredictionStatus.RUNNING, started_at=started, attempts=1
    )
    assert run(prediction, StubClassifier()) is ScoringOutcome.DONE
    assert Prediction.objects.get(pk=prediction.pk).attempts == 2


def test_it_fails_at_once_on_an_undecodable_image():
    prediction = PredictionFactory.create()
    outcome = run(prediction, StubClassifier(error=ImageDecodeError("truncated file")))
    assert outcome is ScoringOutcome.FAILED
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.FAILED
    assert "could not be decoded" in prediction.error_message
    assert AuditEvent.objects.filter(action=AuditAction.PREDICTION_FAILED).count() == 1


def test_it_releases_the_row_for_a_retry_after_a_transient_error():
    prediction = PredictionFactory.create()
    outcome = run(prediction, StubClassifier(error=ConnectionError("storage unreachable")))
    assert outcome is ScoringOutcome.RETRY
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.PENDING
    assert "storage unreachable" in prediction.error_message


def test_it_fails_for_good_after_the_last_attempt(settings):
    settings.SCORING_MAX_ATTEMPTS = 2
    prediction = PredictionFactory.create()
    classifier = StubClassifier(error=RuntimeError("out of memory"))
    assert run(prediction, classifier) is ScoringOutcome.RETRY
    assert run(prediction, classifier) is ScoringOutcome.FAILED
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.FAILED
    assert prediction.error_message.startswith("Scoring failed after 2 attempts.")
    assert "out of memory" in prediction.error_message


def test_it_records_a_model_that_will_not_load_as_a_failure(settings):
    settings.SCORING_MAX_ATTEMPTS = 1

    def broken_loader() -> StubClassifier:
        raise RuntimeError("model artifact missing")

    prediction = PredictionFactory.create()
    outcome = prediction_run(prediction_id=prediction.pk, classifier_loader=broken_loader)
    assert outcome is ScoringOutcome.FAILED
    assert "model artifact missing" in Prediction.objects.get(pk=prediction.pk).error_message


def test_it_skips_a_prediction_that_no_longer_exists():
    assert (
        prediction_run(prediction_id=987654, classifier_loader=StubClassifier)
        is ScoringOutcome.SKIPPED
    )
