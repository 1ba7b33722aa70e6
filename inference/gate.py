"""The input gate: whether an image is one the model can judge, decided before its score counts.

Two kinds of check, both fitted by `training` on real dermoscopic images and shipped in the
artifact (`gate.npz`, its sha256 in `metadata.json`):

- Cheap image checks on the model's input pixels: too blurred (variance of the Laplacian), too
  dark or too bright (mean grey level). Their limits sit in the tails of what dermoscopic
  validation images show.
- Whether the model's own pooled features look like those of its training images: the
  Mahalanobis distance to their mean under a shrunk covariance. A page of text or a solid
  colour gives features far from any lesion's, whatever score the head then makes of them.

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


def image_measures(pixels: np.ndarray) -> ImageMeasures:
    """Sharpness and brightness of a (N, H, W, 3) uint8 batch of model input pixels."""
    grey = pixels.astype(np.float32).mean(axis=-1) / 255.0
    laplacian = (
        grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
    ) - 4.0 * grey[:, 1:-1, 1:-1]
    return ImageMeasures(
        sharpness=laplacian.reshape(len(pixels), -1).var(axis=1).astype(np.float64),
        brightness=grey.reshape(len(pixels), -1).mean(axis=1).astype(np.float64),
    )


@dataclass(frozen=True)
class InputGate:
    """Limits fitted on dermoscopic images, and the feature statistics of the training images."""

    feature_mean: np.ndarray  # (D,)
    # W such that ||(f - mean) @ W|| is the Mahalanobis distance: the inverse Cholesky factor
    # of the shrunk covariance, transposed.
    whitening: np.ndarray  # (D, D)
    max_distance: float
    min_sharpness: float
    min_brightness: float
    max_brightness: float

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each (N, D) pooled feature row to the training images'."""
        centred = np.asarray(features, dtype=np.float64) - self.feature_mean
        return np.linalg.norm(centred @ self.whitening, axis=1)

    def reasons(self, pixels: np.ndarray, features: np.ndarray) -> list[GateReason | None]:
        """Per image, why it is turned away, or None when the model may judge it."""
        return self.decide(image_measures(pixels), self.distances(features))

    def decide(self, measures: ImageMeasures, distances: np.ndarray) -> list[GateReason | None]:
        """`reasons`, from measurements already taken. Foreign features come first: a page of
        text or a blue square is not a dermoscopic image, whatever its sharpness; a blurred or
        dark photo of a lesion, whose features still look like one, is told what is wrong."""
        verdicts: list[GateReason | None] = []
        for sharpness, brightness, distance in zip(
            measures.sharpness, measures.brightness, distances, strict=True
        ):
            if distance > self.max_distance:
                verdicts.append(GateReason.NOT_DERMOSCOPIC)
            elif brightness < self.min_brightness:
                verdicts.append(GateReason.TOO_DARK)
            elif brightness > self.max_brightness:
                verdicts.append(GateReason.TOO_BRIGHT)
            elif sharpness < self.min_sharpness:
                verdicts.append(GateReason.TOO_BLURRED)
            else:
                verdicts.append(None)
        return verdicts

    def save(self, path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(
                handle,
                feature_mean=self.feature_mean.astype(np.float32),
                whitening=self.whitening.astype(np.float32),
                limits=np.array(
                    [
                        self.max_distance,
                        self.min_sharpness,
                        self.min_brightness,
                        self.max_brightness,
                    ],
                    dtype=np.float64,
                ),
            )

    @classmethod
    def load(cls, path: Path) -> InputGate:
        try:
            with np.load(path, allow_pickle=False) as archive:
                mean = archive["feature_mean"].astype(np.float64)
                whitening = archive["whitening"].astype(np.float64)
                limits = archive["limits"].astype(np.float64)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelArtifactError(f"cannot read the input gate {path}: {exc}") from exc
        if mean.ndim != 1 or whitening.shape != (mean.size, mean.size) or limits.shape != (4,):
            raise ModelArtifactError(f"input gate {path} has arrays of the wrong shape")
        max_distance, min_sharpness, min_brightness, max_brightness = (float(v) for v in limits)
        return cls(mean, whitening, max_distance, min_sharpness, min_brightness, max_brightness)
