from celery import Task, shared_task
from django.conf import settings

from webapp.scoring import services
from webapp.scoring.classifier import classifier_get


@shared_task(
    bind=True,
    name="scoring.prediction_score",
    acks_late=True,
    # The attempt count that matters lives on the row; this only stops a runaway loop.
    max_retries=settings.SCORING_MAX_ATTEMPTS + 3,
)
def prediction_score(self: Task, prediction_id: int) -> str:
    """Score one prediction, with other pending ones in the same pass; safe to run twice."""
    outcome = services.prediction_run(prediction_id=prediction_id, classifier_loader=classifier_get)
    if outcome is services.ScoringOutcome.RETRY:
        raise self.retry(countdown=settings.SCORING_RETRY_DELAY_SECONDS)
    if outcome is services.ScoringOutcome.BUSY:
        # A redelivery while another worker holds the row: come back once that claim could be
        # stale, so a worker that died mid-task does not leave the row running forever.
        raise self.retry(countdown=settings.SCORING_STALE_AFTER_SECONDS + 1)
    return str(outcome)
