"""Fit the served model's input gate (inference.gate) and measure what it turns away.

Fitted on real dermoscopic images only: the feature statistics and reference features on
training images, each limit in the tail of the validation images, so that under 1% of real
validation images are turned away in all. What it then does is measured on images it was not
fitted on: the test split and the held-out source (real images it should let through) and
images that are not dermoscopic at all (which it should stop): solid colours, noise, gradients,
pages of text, screenshots, patterns, everyday photographs. Those are drawn with another seed
than the ones the checks were designed on.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from sklearn.covariance import LedoitWolf

from inference import Classifier
from inference.artifact import file_sha256, read_metadata, write_metadata
from inference.gate import (
    GATE_FILE,
    GateReason,
    ImageMeasures,
    InputGate,
    image_measures,
    unit_rows,
)
from training.data import Sample

# The share of real validation images each check may turn away. The checks turn away partly
# the same odd images, so together they stay under 1%.
DISTANCE_QUANTILE = 0.997
NEIGHBOUR_QUANTILE = 0.998
FLATNESS_QUANTILE = 0.999
IMAGE_CHECK_TAIL = 0.0005  # each side of brightness and of sharpness
# Feature statistics of 1280 dimensions need a few thousand images, not all of them; the same
# images are the references of the nearest-neighbour check.
MAX_FIT_IMAGES = 4000
BATCH = 64


@dataclass(frozen=True)
class Measured:
    """What the gate looks at, for a set of images."""

    features: np.ndarray  # (N, D) pooled features
    measures: ImageMeasures


def measure(classifier: Classifier, images: Sequence[Path] | Sequence[np.ndarray]) -> Measured:
    """Pooled features and image measures of images, preprocessed as the worker does."""
    features, measures = [], []
    for start in range(0, len(images), BATCH):
        pixels = classifier.preprocess(list(images[start : start + BATCH]))
        features.append(classifier.analyse(pixels).features)
        measures.append(image_measures(pixels))
    return Measured(
        features=np.concatenate(features),
        measures=ImageMeasures(
            sharpness=np.concatenate([m.sharpness for m in measures]),
            brightness=np.concatenate([m.brightness for m in measures]),
            flatness=np.concatenate([m.flatness for m in measures]),
        ),
    )


def fit_gate(train: Measured, validation: Measured) -> InputGate:
    """Feature statistics from the training images; limits from the validation images."""
    estimate = LedoitWolf().fit(train.features)
    # The covariance is shrunk towards a multiple of the identity, so it is positive definite.
    cholesky = np.linalg.cholesky(estimate.covariance_)
    measures = validation.measures
    unlimited = InputGate(
        feature_mean=estimate.location_,
        whitening=np.linalg.inv(cholesky).T,
        reference_features=unit_rows(train.features),
        max_distance=np.inf,
        max_neighbour_distance=np.inf,
        min_sharpness=float(np.quantile(measures.sharpness, IMAGE_CHECK_TAIL)),
        max_sharpness=float(np.quantile(measures.sharpness, 1 - IMAGE_CHECK_TAIL)),
        min_brightness=float(np.quantile(measures.brightness, IMAGE_CHECK_TAIL)),
        max_brightness=float(np.quantile(measures.brightness, 1 - IMAGE_CHECK_TAIL)),
        max_flatness=float(np.quantile(measures.flatness, FLATNESS_QUANTILE)),
    )
    distances = unlimited.distances(validation.features)
    neighbours = unlimited.neighbour_distances(validation.features)
    return replace(
        unlimited,
        max_distance=float(np.quantile(distances, DISTANCE_QUANTILE)),
        max_neighbour_distance=float(np.quantile(neighbours, NEIGHBOUR_QUANTILE)),
    )


def verdicts(gate: InputGate, measured: Measured) -> list[GateReason | None]:
    """The gate's verdict on measured images."""
    features = measured.features
    return gate.decide(
        measured.measures, gate.distances(features), gate.neighbour_distances(features)
    )


def _turned_away(reasons: Sequence[GateReason | None]) -> dict[str, Any]:
    counts = Counter(str(reason) for reason in reasons if reason is not None)
    return {
        "images": len(reasons),
        "turned_away": sum(counts.values()),
        "share": sum(counts.values()) / max(len(reasons), 1),
        "by_reason": dict(sorted(counts.items())),
    }


# --- Images that are not dermoscopic ------------------------------------------------------


def _solid(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.broadcast_to(rng.integers(0, 256, 3), (size, size, 3)).astype(np.uint8)


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, size)
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    image = start + (end - start) * (
        ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
    )
    return np.broadcast_to(image, (size, size, 3)).astype(np.uint8)


def _pattern(rng: np.random.Generator, size: int) -> np.ndarray:
    cell = int(rng.integers(4, size // 4))
    rows, cols = np.mgrid[0:size, 0:size] // cell
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    return np.where(((rows + cols) % 2 == 0)[..., None], a, b).astype(np.uint8)


def _text_page(rng: np.random.Generator, size: int) -> np.ndarray:
    paper = tuple(int(v) for v in rng.integers(225, 256, 3))
    image = Image.new("RGB", (size * 2, size * 2), paper)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    words = ["lesion", "patient", "report", "the", "of", "clinic", "date", "2024", "page", "and"]
    for line in range(int(rng.integers(10, 30))):
        text = " ".join(rng.choice(words, size=int(rng.integers(3, 9))))
        draw.text((12, 10 + line * 14), text, fill=(20, 20, 20), font=font)
    return np.asarray(image.resize((size, size)))


def _screenshot(rng: np.random.Generator, size: int) -> np.ndarray:
    image = Image.new("RGB", (size, size), (245, 246, 248))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, size, size // 10), fill=tuple(int(v) for v in rng.integers(0, 200, 3)))
    for _ in range(int(rng.integers(3, 9))):
        x, y = rng.integers(0, size - 40, 2)
        w, h = rng.integers(20, size // 2, 2)
        colour = tuple(int(v) for v in rng.integers(150, 256, 3))
        draw.rectangle((int(x), int(y), int(x + w), int(y + h)), fill=colour, outline=(90, 90, 90))
        draw.text((int(x) + 4, int(y) + 4), "Button", fill=(0, 0, 0))
    return np.asarray(image)


def _photographs(rng: np.random.Generator, size: int, count: int) -> list[np.ndarray]:
    """Crops of the everyday photographs scikit-learn ships (a building, a flower)."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        side = int(rng.integers(min(photo.shape[:2]) // 3, min(photo.shape[:2])))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        crops.append(np.asarray(crop.resize((size, size))))
    return crops


SYNTHETIC_KINDS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "solid colour": _solid,
    "noise": _noise,
    "gradient": _gradient,
    "pattern": _pattern,
    "page of text": _text_page,
    "screenshot": _screenshot,
}


def out_of_distribution_images(
    *, per_kind: int = 40, size: int = 384, seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """Images a clinic might upload by mistake, by kind; JPEG-compressed as uploads are."""
    rng = np.random.default_rng(seed)
    kinds = {
        name: [make(rng, size) for _ in range(per_kind)] for name, make in SYNTHETIC_KINDS.items()
    }
    kinds["photograph"] = _photographs(rng, size, per_kind)
    return {name: [_as_jpeg(image) for image in images] for name, images in kinds.items()}


def _as_jpeg(pixels: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=90)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


# --- Writing it into the artifact --------------------------------------------------------


def _spread(samples: Sequence[Sample], limit: int, seed: int) -> list[Sample]:
    if len(samples) <= limit:
        return list(samples)
    chosen = np.random.default_rng(seed).choice(len(samples), size=limit, replace=False)
    return [samples[index] for index in sorted(chosen)]


def fit_into_artifact(
    artifact_dir: Path,
    classifier: Classifier,
    *,
    train: Sequence[Sample],
    validation: Sequence[Sample],
    checked: Mapping[str, Sequence[Sample]],
    seed: int = 0,
    per_kind: int = 40,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fit the gate, measure it, and write `gate.npz` and its record into the artifact's
    metadata. `checked` names the real image sets it is measured on (test, held-out source)."""
    progress(f"input gate: features of {min(len(train), MAX_FIT_IMAGES)} training images")
    fitted_on = measure(classifier, [s.path for s in _spread(train, MAX_FIT_IMAGES, seed)])
    on_validation = measure(classifier, [s.path for s in validation])
    gate = fit_gate(fitted_on, on_validation)

    real: dict[str, Any] = {"validation": _turned_away(verdicts(gate, on_validation))}
    for name, samples in checked.items():
        progress(f"input gate: {len(samples)} {name} images")
        reasons = verdicts(gate, measure(classifier, [s.path for s in samples]))
        by_source: dict[str, list[GateReason | None]] = {}
        for sample, reason in zip(samples, reasons, strict=True):
            by_source.setdefault(sample.source, []).append(reason)
        real[name] = {
            **_turned_away(reasons),
            "by_source": {source: _turned_away(r) for source, r in sorted(by_source.items())},
        }
    # Another seed than the images the checks were chosen on (seed 0), so the figure is not
    # the one they were tuned to.
    foreign = {
        kind: _turned_away(verdicts(gate, measure(classifier, images)))
        for kind, images in out_of_distribution_images(per_kind=per_kind, seed=seed + 1).items()
    }
    caught = sum(entry["turned_away"] for entry in foreign.values())
    total = sum(entry["images"] for entry in foreign.values())

    gate.save(artifact_dir / GATE_FILE)
    record = {
        "file": GATE_FILE,
        "sha256": file_sha256(artifact_dir / GATE_FILE),
        "fitted_on_training_images": len(fitted_on.features),
        "limits": gate.limits(),
        "real_images_turned_away": real,
        "not_dermoscopic_caught": {"images": total, "caught": caught, "share": caught / total},
        "not_dermoscopic_by_kind": foreign,
    }
    metadata = read_metadata(artifact_dir).raw
    write_metadata(artifact_dir, {**metadata, "input_gate": record})
    return record
