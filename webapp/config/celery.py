"""The Celery application; start a worker with `celery -A webapp.config worker`.

Run one beat per deployment, `celery -A webapp.config beat` (or `worker --beat` where there is
a single worker): it sends the periodic scoring wake-up (CELERY_BEAT_SCHEDULE in settings).
"""

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.config.settings")

app = Celery("dermatriage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def database_connections_tidy(task: Task | None = None, **kwargs: Any) -> None:
    """Give tasks the connection handling Django gives requests, before and after each.

    Celery's Django fixup would close the connection after every task (unless
    CELERY_DB_REUSE_MAX is set, which settings does), and opening one costs every upload's
    scoring a round of connection set-up. `close_old_connections` keeps a healthy connection
    for CONN_MAX_AGE and drops one that failed or has aged out.
    """
    if task is not None and task.request.is_eager:
        # An eager task runs inside its caller, perhaps in a transaction: leave it alone.
        return
    close_old_connections()
