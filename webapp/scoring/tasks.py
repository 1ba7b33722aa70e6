from celery import shared_task

from webapp.scoring import services
from webapp.scoring.worker import classifier_get


# Acknowledged on receipt, not after: a wake-up names no work, so one lost with a dying worker
# costs nothing (the rows it had claimed go stale and a later wake-up takes them back). The
# time limits bound one drain, which stops claiming after services.DRAIN_SECONDS.
@shared_task(name=services.WAKE_TASK, acks_late=False, soft_time_limit=300, time_limit=330)
def predictions_score() -> int:
    """Score the due predictions until none are left; every message is only a wake-up."""
    return services.predictions_drain(classifier_loader=classifier_get)
