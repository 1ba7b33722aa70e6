import pytest

from tests.webapp.factories import PredictionFactory
from webapp.scoring import tasks
from webapp.scoring.models import Prediction, PredictionStatus

pytestmark = pytest.mark.django_db


def test_it_retries_a_failing_score_a_bounded_number_of_times_then_fails(monkeypatch, settings):
    settings.SCORING_MAX_ATTEMPTS = 3

    def unloadable():
        raise OSError("model file unreadable")

    monkeypatch.setattr(tasks, "classifier_get", unloadable)
    prediction = PredictionFactory.create()
    # apply() runs the task here; its retries run here too, one after another.
    tasks.prediction_score.apply(args=(prediction.pk,))
    prediction = Prediction.objects.get(pk=prediction.pk)
    assert prediction.status == PredictionStatus.FAILED
    assert prediction.attempts == 3
    assert "Scoring failed after 3 attempts" in prediction.error_message
    assert "model file unreadable" in prediction.error_message


@pytest.mark.slow
def test_it_scores_with_the_served_model(flagged_lesion):
    prediction = PredictionFactory.create(image__content=flagged_lesion.read_bytes())
    result = tasks.prediction_score.apply(args=(prediction.pk,))
    assert result.get() == "done"
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.DONE
    assert prediction.probability is not None
    assert prediction.threshold is not None
    assert prediction.high_risk == (prediction.probability >= prediction.threshold)
    # A second delivery finds the row done and leaves it alone.
    assert tasks.prediction_score.apply(args=(prediction.pk,)).get() == "skipped"
