"""The scoring worker process: its model, loaded once, and the hooks around its life.

A worker refuses to start when the model artifact is missing or corrupt: it could only claim
predictions and fail them. Its health (database, model) answers the `dermatriage_health` remote
control command that the web's /health/ endpoint and `manage.py health --worker` send.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery.signals import worker_init, worker_process_init
from celery.worker.control import control_command

from inference import ModelArtifactError, load_classifier
from inference.artifact import default_model_dir, read_metadata, verify_model_file
from webapp.lib.health import health_database
from webapp.scoring.services import ScoringModel

logger = logging.getLogger(__name__)

# Set in the worker's main process when the artifact was verified at start-up, and in a
# process that has loaded the model.
_state: dict[str, Any] = {"model_verified": None, "model_loaded": None}


@functools.cache
def classifier_get() -> ScoringModel:
    """Load the served model on first use in this process and keep it for later tasks."""
    classifier: ScoringModel = load_classifier(path=None)
    _state["model_loaded"] = classifier.version
    logger.info(
        "Loaded classifier %s version %s (threshold %.4f)",
        classifier.display_name,
        classifier.version,
        classifier.threshold,
    )
    return classifier


@worker_init.connect
def model_artifact_check(**kwargs: Any) -> None:
    """Refuse to start a worker whose model artifact is missing or corrupt.

    Without such a worker, predictions stay pending until one with a good model drains them.
    Only the files are checked here: loading TensorFlow before the pool forks is not supported.
    """
    try:
        directory = default_model_dir()
        metadata = read_metadata(directory)
        verify_model_file(directory, metadata)
    except ModelArtifactError as exc:
        logger.critical("Refusing to start the scoring worker: %s", exc)
        # SystemExit passes through Celery's signal dispatch, which logs ordinary exceptions
        # and carries on; its message is printed on stderr and the exit status is 1.
        raise SystemExit(f"DermaTriage worker refusing to start: {exc}") from exc
    _state["model_verified"] = metadata.version
    logger.info("Model artifact %s verified", metadata.version)


@worker_process_init.connect
def classifier_preload(**kwargs: Any) -> None:
    """Load the model as each pool process starts, not inside its first task.

    Loading in a prefork parent before the fork would share TensorFlow state across processes,
    which it does not support.
    """
    try:
        classifier_get()
    except Exception:
        # Tasks report the same error on their prediction rows, where users see it.
        logger.exception("Could not preload the classifier")


@control_command(name="dermatriage_health")
def dermatriage_health(state: Any) -> dict[str, Any]:
    """This worker's health: ok once its model artifact is verified and the database answers."""
    database = health_database()
    model = _state["model_loaded"] or _state["model_verified"]
    return {
        "ok": bool(model) and database.ok,
        "model": model,
        "model_loaded_in_this_process": _state["model_loaded"] is not None,
        "database": database.detail,
    }
