"""Load a trained artifact once and score batches of images with it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.artifact import ModelMetadata, default_model_dir, read_metadata, verify_model_file
from inference.backends import (
    BackendChoice,
    FlatbufferCache,
    Forward,
    backend_choice,
    cache_root,
    interpreter_threads,
    keras_forward,
    load_keras_model,
    tflite_forward,
)
from inference.errors import BackendUnavailableError, ModelArtifactError
from inference.preprocessing import ImageSource, flip_views

logger = logging.getLogger(__name__)

__all__ = ["Classifier", "Forward", "ImagePrediction", "load_classifier"]


@dataclass(frozen=True)
class ImagePrediction:
    """The classifier's answer for one image."""

    probability: float  # calibrated probability of malignancy
    high_risk: bool  # probability >= the artifact's threshold
    label: str
    model_version: str


class Classifier:
    """A loaded model with its metadata; `predict` scores a batch of images.

    `backend` names what runs the forward pass: "tflite" (the LiteRT interpreter on a flatbuffer
    verified against the Keras model) or "keras" (a traced Keras call).
    """

    def __init__(
        self, forward: Forward, metadata: ModelMetadata, *, backend: str = "keras"
    ) -> None:
        self._forward = forward
        self.metadata = metadata
        self.backend = backend
        # One forward pass at a time: the LiteRT interpreter is not thread-safe, and concurrent
        # Keras calls from a threaded worker pool would only fight over the same cores.
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def threshold(self) -> float:
        return self.metadata.threshold

    @property
    def display_name(self) -> str:
        return self.metadata.display_name

    def preprocess(self, images: Sequence[ImageSource]) -> np.ndarray:
        """Decode and resize images into the uint8 batch the model takes."""
        return self.metadata.preprocessing.batch(images)

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) malignancy logits for a uint8 pixel batch."""
        if pixels.ndim != 4 or pixels.shape[1:] != self._input_shape:
            raise ValueError(
                f"expected a batch of shape (N, *{self._input_shape}), got {pixels.shape}"
            )
        if len(pixels) == 0:
            return np.zeros((0,), dtype=np.float64)
        views = flip_views(pixels) if self.metadata.test_time_augmentation else [pixels]
        with self._lock:
            outputs = [
                np.asarray(self._forward(view), dtype=np.float64).reshape(-1) for view in views
            ]
        return np.mean(outputs, axis=0)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of malignancy for a uint8 pixel batch."""
        scaled = self.logits(pixels) / self.metadata.temperature
        return 1.0 / (1.0 + np.exp(-scaled))

    def predict(self, images: Sequence[ImageSource]) -> list[ImagePrediction]:
        """Score images given as bytes, file paths or arrays; same order as given."""
        return self.predict_pixels(self.preprocess(images))

    def predict_pixels(self, pixels: np.ndarray) -> list[ImagePrediction]:
        """Score an already preprocessed uint8 batch."""
        labels = self.metadata.labels
        return [
            ImagePrediction(
                probability=float(probability),
                high_risk=bool(probability >= self.threshold),
                label=labels[1] if probability >= self.threshold else labels[0],
                model_version=self.version,
            )
            for probability in self.probabilities(pixels)
        ]

    @property
    def _input_shape(self) -> tuple[int, int, int]:
        size = self.metadata.input_size
        return (size, size, 3)


def load_classifier(path: str | Path | None = None, backend: str | None = None) -> Classifier:
    """Load and verify an artifact folder (default: the served model) into a Classifier.

    `backend` is "auto" (the default), "tflite" or "keras"; when None,
    `DERMATRIAGE_INFERENCE_BACKEND` decides. "auto" runs the model with the LiteRT interpreter
    when its flatbuffer's probabilities match the Keras model's within 1e-4, and otherwise falls
    back to Keras with a warning; "tflite" raises BackendUnavailableError instead.
    """
    choice = backend_choice(backend)
    artifact_dir = Path(path) if path is not None else default_model_dir()
    metadata = read_metadata(artifact_dir)
    model_path = verify_model_file(artifact_dir, metadata)
    model = load_keras_model(model_path)
    forward, used = _forward_for(choice, model, metadata)
    classifier = Classifier(forward, metadata, backend=used)
    _check_output_shape(classifier)
    logger.info("Loaded %s on the %s backend", metadata.version, used)
    return classifier


def _forward_for(choice: BackendChoice, model: Any, metadata: ModelMetadata) -> tuple[Forward, str]:
    reference = keras_forward(model)
    if choice == "keras":
        return reference, "keras"
    try:
        forward = tflite_forward(
            model,
            reference,
            metadata,
            threads=interpreter_threads(),
            cache=FlatbufferCache(cache_root()),
        )
    except BackendUnavailableError as exc:
        if choice == "tflite":
            raise BackendUnavailableError(
                f"cannot run {metadata.version} on the tflite backend: {exc}"
            ) from exc
        logger.warning("Scoring %s with Keras instead of LiteRT: %s", metadata.version, exc)
        return reference, "keras"
    return forward, "tflite"


def _check_output_shape(classifier: Classifier) -> None:
    """Score one blank image so a model of the wrong shape fails at load time, not per request."""
    size = classifier.metadata.input_size
    try:
        logits = classifier.logits(np.zeros((1, size, size, 3), dtype=np.uint8))
    except Exception as exc:
        raise ModelArtifactError(f"model does not accept {size}x{size} RGB input: {exc}") from exc
    if logits.shape != (1,) or not np.isfinite(logits).all():
        raise ModelArtifactError(f"model must output one finite logit per image, got {logits!r}")
