"""The classifier, loaded once per worker process and shared by every task it runs."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class ScoreResult(Protocol):
    @property
    def probability(self) -> float: ...
    @property
    def high_risk(self) -> bool: ...
    @property
    def label(self) -> str: ...
    @property
    def model_version(self) -> str: ...


class ScoringModel(Protocol):
    """What the scoring service needs of a classifier (inference.Classifier provides it)."""

    @property
    def version(self) -> str: ...
    @property
    def threshold(self) -> float: ...
    @property
    def display_name(self) -> str: ...
    def predict(self, images: Sequence[Any]) -> Sequence[ScoreResult]: ...


@functools.cache
def classifier_get() -> ScoringModel:
    """Load the served model on first use in this process and keep it for later tasks."""
    # Imported here so that web processes, which never score, do not load TensorFlow.
    from inference import load_classifier
    from webapp.scoring.worker_health import worker_model_loaded

    classifier: ScoringModel = load_classifier(path=None)
    worker_model_loaded(classifier.version)
    logger.info(
        "Loaded classifier %s version %s (threshold %.4f)",
        classifier.display_name,
        classifier.version,
        classifier.threshold,
    )
    return classifier
