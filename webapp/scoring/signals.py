import logging
from typing import Any

from celery.signals import worker_init, worker_process_init

from webapp.scoring.classifier import classifier_get
from webapp.scoring.worker_health import worker_model_verify

logger = logging.getLogger(__name__)


@worker_init.connect
def model_artifact_check(**kwargs: Any) -> None:
    """Refuse to start a worker whose model artifact is missing or corrupt.

    Such a worker could only take tasks off the queue and fail them; without it, predictions
    stay pending, where the sweep finds them once a worker with a good model starts. Only the
    files are checked here: loading TensorFlow before the pool forks is not supported.
    """
    from inference import ModelArtifactError

    try:
        version = worker_model_verify()
    except ModelArtifactError as exc:
        logger.critical("Refusing to start the scoring worker: %s", exc)
        # SystemExit passes through Celery's signal dispatch, which logs ordinary exceptions
        # and carries on; its message is printed on stderr and the exit status is 1.
        raise SystemExit(f"DermaTriage worker refusing to start: {exc}") from exc
    logger.info("Model artifact %s verified", version)


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
