"""The Celery application; start a worker with `celery -A webapp.config worker`.

Run one beat per deployment, `celery -A webapp.config beat` (or `worker --beat` where there is
a single worker): it sends the periodic scoring wake-up (CELERY_BEAT_SCHEDULE in settings).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.config.settings")

app = Celery("dermatriage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
