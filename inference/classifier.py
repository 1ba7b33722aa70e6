"""Load a trained artifact once and score batches of images with it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.artifact import ModelMetadata, default_model_dir, read_metadata, verify_model_file
from inference.errors import ModelArtifactError
from inference.preprocessing import ImageSource, prepare_batch

Forward = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ImagePrediction:
    """The classifier's answer for one image."""

    probability: float  # calibrated probability of malignancy
    high_risk: bool  # probability >= the artifact's threshold
    label: str
    model_version: str


class Classifier:
    """A loaded model with its metadata; `predict` scores a batch of images."""

    def __init__(self, forward: Forward, metadata: ModelMetadata) -> None:
        self._forward = forward
        self.metadata = metadata
        # Keras models may be called from several threads (a threaded worker pool); the lock
        # keeps one forward pass at a time so they do not fight over the same two cores.
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
        return prepare_batch(
            images,
            input_size=self.metadata.input_size,
            effective_resolution=self.metadata.effective_resolution,
        )

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) malignancy logits for a uint8 pixel batch."""
        if pixels.ndim != 4 or pixels.shape[1:] != self._input_shape:
            raise ValueError(
                f"expected a batch of shape (N, *{self._input_shape}), got {pixels.shape}"
            )
        if len(pixels) == 0:
            return np.zeros((0,), dtype=np.float64)
        views = [pixels]
        if self.metadata.test_time_augmentation:
            views += [pixels[:, :, ::-1], pixels[:, ::-1, :], pixels[:, ::-1, ::-1]]
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


def _keras_forward(model_path: Path) -> Forward:
    import keras
    import tensorflow as tf

    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # keras raises many types for a damaged zip/h5 file
        raise ModelArtifactError(f"cannot load model file {model_path}: {exc}") from exc

    # A traced call skips model.predict's per-call dataset and callback setup, which dominates
    # the cost of scoring a single image.
    @tf.function(reduce_retracing=True)
    def call(pixels: tf.Tensor) -> tf.Tensor:
        return model(tf.cast(pixels, tf.float32), training=False)

    def forward(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(call(tf.convert_to_tensor(pixels)))

    return forward


def load_classifier(path: str | Path | None = None) -> Classifier:
    """Load and verify an artifact folder (default: the served model) into a Classifier."""
    artifact_dir = Path(path) if path is not None else default_model_dir()
    metadata = read_metadata(artifact_dir)
    model_path = verify_model_file(artifact_dir, metadata)
    classifier = Classifier(_keras_forward(model_path), metadata)
    _check_output_shape(classifier)
    return classifier


def _check_output_shape(classifier: Classifier) -> None:
    """Score one blank image so a model of the wrong shape fails at load time, not per request."""
    size = classifier.metadata.input_size
    try:
        logits = classifier.logits(np.zeros((1, size, size, 3), dtype=np.uint8))
    except Exception as exc:
        raise ModelArtifactError(f"model does not accept {size}x{size} RGB input: {exc}") from exc
    if logits.shape != (1,) or not np.isfinite(logits).all():
        raise ModelArtifactError(f"model must output one finite logit per image, got {logits!r}")


def describe(classifier: Classifier) -> dict[str, Any]:
    """A short, JSON-ready summary of a loaded classifier (for health checks and UIs)."""
    meta = classifier.metadata
    return {
        "name": meta.name,
        "version": meta.version,
        "display_name": meta.display_name,
        "architecture": meta.architecture,
        "threshold": meta.threshold,
        "input_size": meta.input_size,
    }
