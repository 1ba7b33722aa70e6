"""The Celery application; start a worker with `celery -A webapp.config worker`."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.config.settings")

app = Celery("dermatriage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
