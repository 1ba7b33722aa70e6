import pytest

from tests.webapp.factories import PredictionFactory
from webapp.scoring import tasks
from webapp.scoring.models import Prediction, PredictionStatus

pytestmark = pytest.mark.django_db


@pytest.mark.slow
def test_it_scores_with_the_served_model(flagged_lesion):
    prediction = PredictionFactory.create(image__content=flagged_lesion.read_bytes())
    assert tasks.predictions_score.apply().get() == 1
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.DONE
    assert prediction.probability is not None
    assert prediction.threshold is not None
    assert prediction.high_risk == (prediction.probability >= prediction.threshold)
    # A second wake-up finds nothing due and leaves the row alone.
    assert tasks.predictions_score.apply().get() == 0
    assert Prediction.objects.get(pk=prediction.pk).attempts == 1
