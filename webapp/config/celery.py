"""The Celery application; start a worker with `celery -A webapp.config worker`.

Run the periodic stale-prediction sweep with one beat process per deployment:
`celery -A webapp.config beat`, or `worker --beat` where there is a single worker.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.config.settings")

app = Celery("dermatriage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(related_name="sweep_tasks")


@app.on_after_configure.connect
def beat_schedule_setup(sender: Celery, **kwargs: object) -> None:
    """Schedule the sweep that re-queues predictions left pending (webapp.scoring.sweep)."""
    from django.conf import settings

    interval = settings.SCORING_SWEEP_INTERVAL_SECONDS
    sender.add_periodic_task(
        interval,
        sender.signature("scoring.prediction_sweep"),
        name="prediction-sweep",
        # A sweep still waiting when the next is due is worthless: drop it rather than pile up.
        expires=interval,
    )
