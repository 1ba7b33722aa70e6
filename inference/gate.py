"""The input gate: whether an image is one the model can judge, decided before its score counts.

Two kinds of check, all fitted by `training` on real dermoscopic images and shipped in the
artifact (`gate.npz`, its sha256 in `metadata.json`), each limit in the tail of what
dermoscopic validation images show:

- Cheap image checks on the model's input pixels: too blurred or too noisy (variance of the
  Laplacian), too dark or too bright (mean grey level), and too much of the image perfectly
  flat (pages, screenshots and drawings have large areas of one colour; skin never does).
- Whether the model's own pooled features look like those of its training images, measured
  two ways that fail differently: the Mahalanobis distance to their mean under a shrunk
  covariance (far for solid colours, noise and patterns), and the cosine distance to the
  nearest training images (far for photographs and screenshots, which can sit near the mean).

An image failing a check gets a reason instead of a trusted score.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.errors import ModelArtifactError

GATE_FILE = "gate.npz"


class GateReason(enum.StrEnum):
    """Why an image was turned away; the values are stored and shown in the API."""

    NOT_DERMOSCOPIC = "not_dermoscopic"
    TOO_BLURRED = "too_blurred"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"

    @property
    def message(self) -> str:
        return {
            GateReason.NOT_DERMOSCOPIC: "Not a dermoscopic image the model can judge.",
            GateReason.TOO_BLURRED: "Too blurred to judge.",
            GateReason.TOO_DARK: "Too dark to judge.",
            GateReason.TOO_BRIGHT: "Over-exposed: too bright to judge.",
        }[self]


@dataclass(frozen=True)
class ImageMeasures:
    """What the cheap checks look at, per image of a batch."""

    sharpness: np.ndarray  # variance of the Laplacian of the grey image, in (0..1 grey)^2
    brightness: np.ndarray  # mean grey level, 0..1
    flatness: np.ndarray  # share of pixels whose Laplacian is below FLAT_STEP


# Half a grey level: what is flatter than this is one colour, not skin with its fine texture
# and its camera's noise.
FLAT_STEP = 0.5 / 255.0
# Neighbours whose cosine distance is the feature check's second measure; one alone would make
# a lone odd training image a safe harbour for everything near it.
NEIGHBOURS = 20


def image_measures(pixels: np.ndarray) -> ImageMeasures:
    """Sharpness, brightness and flatness of a (N, H, W, 3) uint8 batch of model input pixels."""
    grey = pixels.astype(np.float32).mean(axis=-1) / 255.0
    laplacian = (
        (grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:])
        - 4.0 * grey[:, 1:-1, 1:-1]
    ).reshape(len(pixels), -1)
    return ImageMeasures(
        sharpness=laplacian.var(axis=1).astype(np.float64),
        brightness=grey.reshape(len(pixels), -1).mean(axis=1).astype(np.float64),
        flatness=(np.abs(laplacian) < FLAT_STEP).mean(axis=1).astype(np.float64),
    )


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to length one, for cosine distances."""
    rows = np.asarray(features, dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class InputGate:
    """Limits fitted on dermoscopic images, and the feature statistics of the training images."""

    feature_mean: np.ndarray  # (D,)
    # W such that ||(f - mean) @ W|| is the Mahalanobis distance: the inverse Cholesky factor
    # of the shrunk covariance, transposed.
    whitening: np.ndarray  # (D, D)
    # Pooled features of training images, each of length one: (M, D).
    reference_features: np.ndarray
    max_distance: float
    max_neighbour_distance: float
    min_sharpness: float
    max_sharpness: float
    min_brightness: float
    max_brightness: float
    max_flatness: float

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each (N, D) pooled feature row to the training images'."""
        centred = np.asarray(features, dtype=np.float64) - self.feature_mean
        return np.linalg.norm(centred @ self.whitening, axis=1)

    def neighbour_distances(self, features: np.ndarray) -> np.ndarray:
        """Cosine distance of each (N, D) pooled feature row to its NEIGHBOURS-th nearest
        training image."""
        references = np.asarray(self.reference_features, dtype=np.float32)
        similarity = unit_rows(features) @ references.T
        k = min(NEIGHBOURS, similarity.shape[1])
        kth = np.partition(similarity, similarity.shape[1] - k, axis=1)[:, -k]
        return (1.0 - kth).astype(np.float64)

    def reasons(self, pixels: np.ndarray, features: np.ndarray) -> list[GateReason | None]:
        """Per image, why it is turned away, or None when the model may judge it."""
        return self.decide(
            image_measures(pixels), self.distances(features), self.neighbour_distances(features)
        )

    def decide(
        self, measures: ImageMeasures, distances: np.ndarray, neighbour_distances: np.ndarray
    ) -> list[GateReason | None]:
        """`reasons`, from measurements already taken. Foreign features and noise come first:
        a page of text is not a dermoscopic image, whatever its brightness; a blurred or dark
        photo of a lesion, whose features still look like one, is told what is wrong. Flatness
        comes last, so that a blurred lesion is called blurred."""
        verdicts: list[GateReason | None] = []
        for sharpness, brightness, flatness, distance, neighbour in zip(
            measures.sharpness,
            measures.brightness,
            measures.flatness,
            distances,
            neighbour_distances,
            strict=True,
        ):
            if (
                distance > self.max_distance
                or neighbour > self.max_neighbour_distance
                or sharpness > self.max_sharpness
            ):
                verdicts.append(GateReason.NOT_DERMOSCOPIC)
            elif brightness < self.min_brightness:
                verdicts.append(GateReason.TOO_DARK)
            elif brightness > self.max_brightness:
                verdicts.append(GateReason.TOO_BRIGHT)
            elif sharpness < self.min_sharpness:
                verdicts.append(GateReason.TOO_BLURRED)
            elif flatness > self.max_flatness:
                verdicts.append(GateReason.NOT_DERMOSCOPIC)
            else:
                verdicts.append(None)
        return verdicts

    def limits(self) -> dict[str, float]:
        """Every limit by name, as recorded in the artifact's metadata."""
        return {name: float(getattr(self, name)) for name in LIMITS}

    def save(self, path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(
                handle,
                feature_mean=self.feature_mean.astype(np.float32),
                whitening=self.whitening.astype(np.float32),
                # Half precision: a cosine similarity needs no more, and it halves the file.
                reference_features=self.reference_features.astype(np.float16),
                limits=np.array([getattr(self, name) for name in LIMITS], dtype=np.float64),
            )

    @classmethod
    def load(cls, path: Path) -> InputGate:
        try:
            with np.load(path, allow_pickle=False) as archive:
                mean = archive["feature_mean"].astype(np.float64)
                whitening = archive["whitening"].astype(np.float64)
                # Widened once here, not for every batch scored.
                reference = archive["reference_features"].astype(np.float32)
                limits = archive["limits"].astype(np.float64)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelArtifactError(f"cannot read the input gate {path}: {exc}") from exc
        if (
            mean.ndim != 1
            or whitening.shape != (mean.size, mean.size)
            or reference.ndim != 2
            or reference.shape[1] != mean.size
            or limits.shape != (len(LIMITS),)
        ):
            raise ModelArtifactError(f"input gate {path} has arrays of the wrong shape")
        return cls(
            feature_mean=mean,
            whitening=whitening,
            reference_features=reference,
            **{name: float(value) for name, value in zip(LIMITS, limits, strict=True)},
        )


# The limits in the order gate.npz stores them.
LIMITS = (
    "max_distance",
    "max_neighbour_distance",
    "min_sharpness",
    "max_sharpness",
    "min_brightness",
    "max_brightness",
    "max_flatness",
)
