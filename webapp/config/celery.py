"""The Celery application; start a worker with `celery -A webapp.config worker`.

Run the periodic stale-prediction sweep with one beat process per deployment:
`celery -A webapp.config beat`, or `worker --beat` where there is a single worker.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

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


@task_prerun.connect
@task_postrun.connect
def database_connections_tidy(task: Task | None = None, **kwargs: Any) -> None:
    """Give tasks the connection handling Django gives requests, before and after each.

    Celery's Django fixup would close the connection after every task (unless
    CELERY_DB_REUSE_MAX is set, which settings does); a fresh PostgreSQL connection per task
    was measured at about a tenth of a scoring worker's time in a burst, most of it spent on
    tasks that only find their row already scored. `close_old_connections` keeps a healthy
    connection for CONN_MAX_AGE and drops one that failed or has aged out.
    """
    if task is not None and task.request.is_eager:
        # An eager task runs inside its caller, perhaps in a transaction: leave it alone.
        return
    from django.db import close_old_connections

    close_old_connections()
