from celery import shared_task

from webapp.scoring.sweep import prediction_sweep as prediction_sweep_service


@shared_task(name="scoring.prediction_sweep", acks_late=False, ignore_result=True)
def prediction_sweep() -> int:
    """Queue predictions whose scoring task never reached, or was lost by, the broker."""
    return prediction_sweep_service()
