"""What a scoring worker knows of its own health, and the hooks that keep it up to date.

A worker refuses to start when the model artifact is missing or corrupt: it could only take
tasks and fail them. Its health (database, model) answers the `dermatriage_health` remote
control command that the web's /health/ endpoint and `manage.py health --worker` send.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.control import control_command

logger = logging.getLogger(__name__)

# Set in the worker's main process when the artifact was verified at start-up, and in a
# process that has loaded the model.
_state: dict[str, Any] = {"model_verified": None, "model_loaded": None}


def worker_model_verify() -> str:
    """Check the artifact a worker is about to load; ModelArtifactError says what is wrong."""
    from inference.artifact import default_model_dir, read_metadata, verify_model_file

    directory = default_model_dir()
    metadata = read_metadata(directory)
    verify_model_file(directory, metadata)
    _state["model_verified"] = metadata.version
    return metadata.version


def worker_model_loaded(version: str) -> None:
    _state["model_loaded"] = version


@control_command(name="dermatriage_health")
def dermatriage_health(state: Any) -> dict[str, Any]:
    """This worker's health: ok once its model artifact is verified and the database answers."""
    from webapp.lib.health import health_database

    database = health_database()
    model = _state["model_loaded"] or _state["model_verified"]
    return {
        "ok": bool(model) and database.ok,
        "model": model,
        "model_loaded_in_this_process": _state["model_loaded"] is not None,
        "database": database.detail,
    }
