"""Load a trained artifact once and score batches of images with it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.artifact import (
    ModelMetadata,
    default_model_dir,
    file_sha256,
    read_metadata,
    verify_model_file,
)
from inference.backends import (
    BackendChoice,
    FlatbufferCache,
    Forward,
    backend_choice,
    cache_root,
    gpu_names,
    head_kernel,
    interpreter_threads,
    keras_forward,
    load_keras_model,
    tflite_forward,
    verified_gpu_forward,
    with_feature_maps,
)
from inference.errors import BackendUnavailableError, ModelArtifactError
from inference.explain import activation_maps
from inference.gate import GATE_FILE, GateReason, InputGate
from inference.preprocessing import ImageSource, flip_views

logger = logging.getLogger(__name__)

__all__ = ["Classifier", "Forward", "ImagePrediction", "load_classifier"]


@dataclass(frozen=True)
class ImagePrediction:
    """The classifier's answer for one image."""

    probability: float  # calibrated probability of malignancy
    # probability >= the artifact's threshold, for an image the input gate let through
    high_risk: bool
    label: str
    model_version: str
    # Why the input gate turned the image away (its probability is then not to be trusted);
    # None when it passed, or when the artifact has no gate.
    gate_reason: GateReason | None = None
    # (h, w) map in 0..1 of where the score came from (inference.explain)
    heatmap: np.ndarray | None = field(default=None, compare=False, repr=False)
    # The pooled features the head scored: what "similar images" compares.
    features: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BatchAnalysis:
    """One forward pass's outputs for a batch, before they become predictions."""

    logits: np.ndarray  # (N,)
    feature_maps: np.ndarray  # (N, h, w, C)

    @property
    def features(self) -> np.ndarray:
        """Pooled features, (N, C): the head's input."""
        return self.feature_maps.mean(axis=(1, 2))


class Classifier:
    """A loaded model with its metadata; `predict` scores a batch of images.

    `backend` names what runs the forward pass: "gpu" (an XLA-compiled Keras call on a GPU,
    in float16 where that matches float32), "tflite" (the LiteRT interpreter on a flatbuffer
    verified against the Keras model) or "keras" (a traced Keras call on the CPU). `device` says
    where, for the log line and the health page.
    """

    def __init__(
        self,
        forward: Forward,
        metadata: ModelMetadata,
        *,
        kernel: np.ndarray,
        backend: str = "keras",
        device: str = "CPU",
        gate: InputGate | None = None,
    ) -> None:
        self._forward = forward
        self.metadata = metadata
        self.backend = backend
        self.device = device
        self._kernel = kernel
        self.gate = gate
        # One forward pass at a time: the LiteRT interpreter is not thread-safe, and concurrent
        # Keras calls from a threaded worker pool would only fight over the same cores.
        self._lock = threading.Lock()

    @property
    def head_kernel(self) -> np.ndarray:
        """The final linear unit's kernel, which turns feature maps into heatmaps."""
        return self._kernel

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

    def analyse(self, pixels: np.ndarray) -> BatchAnalysis:
        """Raw (uncalibrated) logits and the last feature maps for a uint8 pixel batch."""
        if pixels.ndim != 4 or pixels.shape[1:] != self._input_shape:
            raise ValueError(
                f"expected a batch of shape (N, *{self._input_shape}), got {pixels.shape}"
            )
        views = flip_views(pixels) if self.metadata.test_time_augmentation else [pixels]
        with self._lock:
            outputs = [self._forward(view) for view in views]
        logits = np.mean(
            [np.asarray(view_logits, dtype=np.float64).reshape(-1) for view_logits, _ in outputs],
            axis=0,
        ).reshape(len(pixels))
        # The maps of the image as given: the flipped views' maps are of flipped images.
        return BatchAnalysis(logits=logits, feature_maps=np.asarray(outputs[0][1]))

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) malignancy logits for a uint8 pixel batch."""
        return self.analyse(pixels).logits

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of malignancy from raw logits."""
        return 1.0 / (1.0 + np.exp(-logits / self.metadata.temperature))

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of malignancy for a uint8 pixel batch."""
        return self.calibrated(self.logits(pixels))

    def predict(self, images: Sequence[ImageSource]) -> list[ImagePrediction]:
        """Score images given as bytes, file paths or arrays; same order as given."""
        return self.predict_pixels(self.preprocess(images))

    def predict_pixels(self, pixels: np.ndarray) -> list[ImagePrediction]:
        """Score an already preprocessed uint8 batch: probability, input-gate verdict, heatmap
        and pooled features, all from one forward pass."""
        if len(pixels) == 0:
            return []
        analysis = self.analyse(pixels)
        probabilities = self.calibrated(analysis.logits)
        features = analysis.features
        heatmaps = activation_maps(analysis.feature_maps, self._kernel)
        reasons: list[GateReason | None] = (
            self.gate.reasons(pixels, features) if self.gate else [None] * len(pixels)
        )
        labels = self.metadata.labels
        return [
            ImagePrediction(
                probability=float(probability),
                high_risk=bool(probability >= self.threshold and reason is None),
                label=labels[1] if probability >= self.threshold else labels[0],
                model_version=self.version,
                gate_reason=reason,
                heatmap=heatmap,
                features=feature_row.astype(np.float32),
            )
            for probability, reason, heatmap, feature_row in zip(
                probabilities, reasons, heatmaps, features, strict=True
            )
        ]

    @property
    def _input_shape(self) -> tuple[int, int, int]:
        size = self.metadata.input_size
        return (size, size, 3)


def load_classifier(path: str | Path | None = None, backend: str | None = None) -> Classifier:
    """Load and verify an artifact folder (default: the served model) into a Classifier.

    `backend` is "auto" (the default), "gpu", "tflite" or "keras"; when None,
    `DERMATRIAGE_INFERENCE_BACKEND` decides. "auto" runs on a GPU when TensorFlow reports one and
    the GPU path passes its parity check, else with the LiteRT interpreter when its flatbuffer
    matches the Keras model, else with Keras on the CPU, warning at each step down; "gpu" and
    "tflite" raise BackendUnavailableError instead of stepping down.
    """
    choice = backend_choice(backend)
    artifact_dir = Path(path) if path is not None else default_model_dir()
    metadata = read_metadata(artifact_dir)
    model_path = verify_model_file(artifact_dir, metadata)
    model = load_keras_model(model_path)
    forward, used, device = _forward_for(choice, with_feature_maps(model), metadata)
    classifier = Classifier(
        forward,
        metadata,
        kernel=head_kernel(model),
        backend=used,
        device=device,
        gate=load_gate(artifact_dir, metadata),
    )
    _check_output_shape(classifier)
    logger.info("Scoring with %s on %s, %s path", metadata.version, device, used)
    return classifier


def load_gate(artifact_dir: Path, metadata: ModelMetadata) -> InputGate | None:
    """The artifact's input gate after checking its recorded sha256; None for an artifact
    trained before there was one."""
    recorded = metadata.raw.get("input_gate")
    if recorded is None:
        return None
    path = artifact_dir / GATE_FILE
    if not path.is_file():
        raise ModelArtifactError(f"input gate {path} named in metadata.json is missing")
    if file_sha256(path) != recorded.get("sha256"):
        raise ModelArtifactError(
            f"input gate {path} is corrupt or was replaced: its sha256 does not match metadata.json"
        )
    return InputGate.load(path)


def _forward_for(
    choice: BackendChoice, model: Any, metadata: ModelMetadata
) -> tuple[Forward, str, str]:
    """The forward pass `choice` asks for, with its backend's and its device's names."""
    reference = keras_forward(model)
    if choice in ("auto", "gpu"):
        gpus = gpu_names()
        try:
            if not gpus:
                raise BackendUnavailableError("TensorFlow reports no GPU on this machine")
            forward, precision = verified_gpu_forward(model, reference, metadata)
            return forward, "gpu", f"{gpus[0]} ({precision})"
        except BackendUnavailableError as exc:
            if choice == "gpu":
                raise BackendUnavailableError(
                    f"cannot run {metadata.version} on the gpu backend: {exc}"
                ) from exc
            if gpus:
                logger.warning("Not scoring %s on the GPU: %s", metadata.version, exc)
    cpu = "CPU"
    if choice == "keras":
        return reference, "keras", cpu
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
        return reference, "keras", cpu
    return forward, "tflite", cpu


def _check_output_shape(classifier: Classifier) -> None:
    """Score one blank image so a model of the wrong shape fails at load time, not per request."""
    size = classifier.metadata.input_size
    try:
        analysis = classifier.analyse(np.zeros((1, size, size, 3), dtype=np.uint8))
    except Exception as exc:
        raise ModelArtifactError(f"model does not accept {size}x{size} RGB input: {exc}") from exc
    logits = analysis.logits
    if logits.shape != (1,) or not np.isfinite(logits).all():
        raise ModelArtifactError(f"model must output one finite logit per image, got {logits!r}")
    channels = analysis.feature_maps.shape[-1]
    if classifier.gate is not None and classifier.gate.feature_mean.shape != (channels,):
        raise ModelArtifactError(
            f"input gate expects {classifier.gate.feature_mean.size} features, the model gives "
            f"{channels}"
        )
