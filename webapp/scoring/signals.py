import logging
from typing import Any

from celery.signals import worker_process_init

from webapp.scoring.classifier import classifier_get

logger = logging.getLogger(__name__)


@worker_process_init.connect
def classifier_preload(**kwargs: Any) -> None:
    """Load the model as each prefork child starts, not inside its first task.

    Loading in the parent before the fork would share TensorFlow state across processes, which
    it does not support. Solo and thread pools load lazily on the first task instead.
    """
    try:
        classifier_get()
    except Exception:
        # Tasks report the same error on their prediction rows, where users see it.
        logger.exception("Could not preload the classifier")
