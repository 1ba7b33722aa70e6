"""Health checks for orchestrators: database, broker, model artifact, scoring workers.

Each check returns a ComponentHealth instead of raising, so one broken dependency never hides
the state of the others. The web process never loads the model (TensorFlow stays out of it);
it verifies the artifact the workers load (metadata and sha256), which is what a missing or
corrupt artifact breaks. Workers report whether they hold a loaded model themselves.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from celery import current_app

from inference import ModelArtifactError
from inference.artifact import default_model_dir, read_metadata, verify_model_file
from webapp.lib.health import ComponentHealth, health_database

logger = logging.getLogger(__name__)

# Broker and worker checks must answer within an orchestrator's probe timeout.
BROKER_TIMEOUT_SECONDS = 2
WORKER_REPLY_TIMEOUT_SECONDS = 1.0
# The remote control command each scoring worker answers (webapp.scoring.worker_health).
WORKER_HEALTH_COMMAND = "dermatriage_health"


def health_broker() -> ComponentHealth:
    """Open (or reuse) a connection to the Celery broker, without retrying."""
    try:
        with current_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:
        return ComponentHealth(ok=False, detail=f"{type(exc).__name__}: {exc}".strip())
    return ComponentHealth(ok=True, detail="ok")


_artifact_lock = threading.Lock()
_artifact_cache: dict[tuple[str, int, int, int, int], ComponentHealth] = {}


def health_model_artifact(artifact_dir: Path | None = None) -> ComponentHealth:
    """Check the served artifact's metadata and model file hash, as a worker's load would."""
    directory = artifact_dir or default_model_dir()
    try:
        metadata = read_metadata(directory)
        model_path = directory / metadata.model_file
        meta_stat = (directory / "metadata.json").stat()
        model_stat = model_path.stat()
    except (ModelArtifactError, OSError) as exc:
        return ComponentHealth(ok=False, detail=f"model artifact unusable: {exc}")
    # Hashing the whole model file for every probe would be wasted work: it is redone only
    # when one of the files changed.
    key = (
        str(directory),
        meta_stat.st_mtime_ns,
        meta_stat.st_size,
        model_stat.st_mtime_ns,
        model_stat.st_size,
    )
    with _artifact_lock:
        cached = _artifact_cache.get(key)
        if cached is not None:
            return cached
        try:
            verify_model_file(directory, metadata)
        except (ModelArtifactError, OSError) as exc:
            result = ComponentHealth(ok=False, detail=f"model artifact unusable: {exc}")
        else:
            result = ComponentHealth(
                ok=True, detail="ok", extra={"version": metadata.version, "path": str(directory)}
            )
        _artifact_cache.clear()
        _artifact_cache[key] = result
        return result


def worker_replies(*, destination: list[str] | None = None, timeout: float) -> dict[str, Any]:
    """Each answering worker's own health, by worker name."""
    replies = current_app.control.broadcast(
        WORKER_HEALTH_COMMAND, destination=destination, reply=True, timeout=timeout
    )
    workers: dict[str, Any] = {}
    for reply in replies or []:
        workers.update(reply)
    return workers


def health_workers() -> ComponentHealth:
    """Ask every scoring worker for its own health; ok when one answers with a loaded model."""
    try:
        workers = worker_replies(timeout=WORKER_REPLY_TIMEOUT_SECONDS)
    except Exception as exc:
        return ComponentHealth(ok=False, detail=f"{type(exc).__name__}: {exc}".strip())
    ready = [name for name, state in workers.items() if state.get("ok")]
    detail = f"{len(ready)} of {len(workers)} workers ready" if workers else "no worker answered"
    return ComponentHealth(ok=bool(ready), detail=detail, extra={"workers": workers})


def health_report(*, include_workers: bool) -> tuple[bool, dict[str, Any]]:
    """All checks as one JSON-ready report; healthy when the web's own dependencies are.

    Workers are reported but do not decide the web's health: restarting web processes
    because no worker runs would only add an outage.
    """
    components = {
        "database": health_database(),
        "broker": health_broker(),
        "model": health_model_artifact(),
    }
    healthy = all(component.ok for component in components.values())
    if include_workers:
        components["workers"] = health_workers()
    report = {
        "status": "ok" if healthy else "unavailable",
        "components": {name: asdict(component) for name, component in components.items()},
    }
    return healthy, report
