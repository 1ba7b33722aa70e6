"""How the served classifier holds up when the camera changes, simulated on held-out images.

The model will see images from clinics whose dermatoscopes, lighting and compression differ from
the two sources it was trained on. There is no such clinic's labelled data here, so each
perturbation below imitates one way a camera can differ, at the image's own resolution, before
the served preprocessing; the held-out images are then scored through the served path
(`inference.load_classifier`) and compared with the same images unperturbed: ROC AUC,
sensitivity and specificity at the shipped threshold, and how many high-risk flags change.
A simulation bounds nothing about a real camera, but it shows which differences the score
and the sensitivity promise are fragile to.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from sklearn.metrics import roc_auc_score

from inference import Classifier
from inference.preprocessing import open_image
from training.data import Sample
from training.model_card import DISCLAIMER

SIMULATION_NOTE = (
    "These figures come from simulated camera differences, not from another clinic's images."
)
CHUNK = 32


@dataclass(frozen=True)
class Perturbation:
    name: str
    description: str
    # (image at its own resolution, effective resolution, per-image random generator) -> image
    apply: Callable[[Image.Image, int, np.random.Generator], Image.Image]


def _gains(red: float, green: float, blue: float) -> Callable[[Image.Image, int, Any], Image.Image]:
    """Multiply each channel, as a different white balance or exposure would, and clip."""

    def apply(image: Image.Image, _resolution: int, _rng: Any) -> Image.Image:
        pixels = np.asarray(image, dtype=np.float32) * np.array([red, green, blue], np.float32)
        return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))

    return apply


def _jpeg(quality: int) -> Callable[[Image.Image, int, Any], Image.Image]:
    def apply(image: Image.Image, _resolution: int, _rng: Any) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")

    return apply


def _defocus(image: Image.Image, resolution: int, _rng: Any) -> Image.Image:
    # One pixel of blur at the resolution the model looks at, whatever the file's own size.
    radius = min(image.size) / resolution
    return image.filter(ImageFilter.GaussianBlur(radius))


def _sensor_noise(image: Image.Image, resolution: int, rng: np.random.Generator) -> Image.Image:
    # Noise is drawn at the model's resolution and enlarged to the file's size: white noise at
    # full resolution would mostly average away in the downscaling and test nothing.
    small = (
        max(1, round(image.width * resolution / min(image.size))),
        max(1, round(image.height * resolution / min(image.size))),
    )
    noise = rng.normal(0.0, 8.0, (small[1], small[0], 3)).astype(np.float32)
    enlarged = np.stack(
        [
            np.asarray(Image.fromarray(noise[..., c]).resize(image.size, Image.Resampling.BILINEAR))
            for c in range(3)
        ],
        axis=-1,
    )
    pixels = np.asarray(image, dtype=np.float32) + enlarged
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def _low_resolution(image: Image.Image, resolution: int, _rng: Any) -> Image.Image:
    # A camera that delivers 60% of the effective resolution: detail is lost before the model
    # upsamples the image back.
    scale = 0.6 * resolution / min(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("warmer white balance", "red x1.10, blue x0.90", _gains(1.10, 1.0, 0.90)),
    Perturbation("cooler white balance", "red x0.90, blue x1.10", _gains(0.90, 1.0, 1.10)),
    Perturbation("underexposed", "every channel x0.75", _gains(0.75, 0.75, 0.75)),
    Perturbation("overexposed", "every channel x1.25, clipped", _gains(1.25, 1.25, 1.25)),
    Perturbation(
        "lower contrast",
        "contrast 0.7 (PIL ImageEnhance)",
        lambda image, _r, _g: ImageEnhance.Contrast(image).enhance(0.7),
    ),
    Perturbation(
        "more saturated",
        "saturation 1.3 (PIL ImageEnhance)",
        lambda image, _r, _g: ImageEnhance.Color(image).enhance(1.3),
    ),
    Perturbation("JPEG quality 30", "re-encoded as JPEG at quality 30", _jpeg(30)),
    Perturbation("defocus", "Gaussian blur of 1 px at the effective resolution", _defocus),
    Perturbation(
        "sensor noise", "Gaussian noise, sigma 8 of 255, at the effective resolution", _sensor_noise
    ),
    Perturbation(
        "low-resolution camera",
        "shorter side at 60% of the effective resolution",
        _low_resolution,
    ),
)


@dataclass(frozen=True)
class ConditionResult:
    condition: str
    description: str
    roc_auc: float
    sensitivity: float
    specificity: float
    flags_changed: float  # share of images whose high-risk flag differs from the clean image's
    median_probability_change: float  # median |p - p_clean|

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_conditions(
    classifier: Classifier,
    samples: Sequence[Sample],
    perturbations: Sequence[Perturbation] = PERTURBATIONS,
    *,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Calibrated probabilities of every sample, clean and under each perturbation (name ->
    probabilities in `samples`' order). Each file is decoded once; each image's noise comes
    from its own generator, so a result does not depend on the chunking."""
    resolution = classifier.metadata.effective_resolution
    conditions = ["clean", *(p.name for p in perturbations)]
    scores: dict[str, list[np.ndarray]] = {name: [] for name in conditions}
    for start in range(0, len(samples), CHUNK):
        chunk = samples[start : start + CHUNK]
        images = [open_image(sample.path) for sample in chunk]
        scores["clean"].append(_probabilities(classifier, images))
        for perturbation in perturbations:
            perturbed = [
                perturbation.apply(image, resolution, np.random.default_rng([seed, start + index]))
                for index, image in enumerate(images)
            ]
            scores[perturbation.name].append(_probabilities(classifier, perturbed))
    return {name: np.concatenate(parts) for name, parts in scores.items()}


def _probabilities(classifier: Classifier, images: Sequence[Image.Image]) -> np.ndarray:
    arrays = [np.asarray(image, dtype=np.uint8) for image in images]
    return classifier.probabilities(classifier.preprocess(arrays))


def summarise(
    scores: dict[str, np.ndarray],
    labels: np.ndarray,
    threshold: float,
    perturbations: Sequence[Perturbation] = PERTURBATIONS,
) -> list[ConditionResult]:
    """One row per condition, the clean images first."""
    descriptions = {"clean": "none (decoded at full size, as every perturbed image is)"} | {
        p.name: p.description for p in perturbations
    }
    clean_flags = scores["clean"] >= threshold
    rows = []
    for name, probabilities in scores.items():
        flags = probabilities >= threshold
        rows.append(
            ConditionResult(
                condition=name,
                description=descriptions[name],
                roc_auc=float(roc_auc_score(labels, probabilities)),
                sensitivity=float(flags[labels == 1].mean()),
                specificity=float((~flags[labels == 0]).mean()),
                flags_changed=float((flags != clean_flags).mean()),
                median_probability_change=float(np.median(np.abs(probabilities - scores["clean"]))),
            )
        )
    return rows


def render_markdown(
    rows: Sequence[ConditionResult],
    *,
    model_version: str,
    subset: str,
    labels: np.ndarray,
    target_sensitivity: float,
    command: str,
) -> str:
    """The rows as a markdown page, the clean images first, with the disclaimer."""
    malignant = int(np.sum(labels))
    lines = [
        "# Robustness to camera differences (simulated)",
        "",
        DISCLAIMER,
        "",
        SIMULATION_NOTE,
        "",
        f"Model `{model_version}`, scored through the served path on the {len(labels)} {subset} "
        f"images of its own split ({malignant} malignant). Each condition changes every image "
        "at its own resolution before the usual preprocessing; sensitivity and specificity are "
        "at the shipped threshold. Regenerate with:",
        "",
        "```bash",
        command,
        "```",
        "",
        "| condition | what changes | ROC AUC | change | sensitivity | specificity "
        "| flags changed | median abs. probability change |",
        "|---|---|---|---|---|---|---|---|",
    ]
    clean = rows[0]
    for row in rows:
        lines.append(
            f"| {row.condition} | {row.description} | {row.roc_auc:.3f} "
            f"| {row.roc_auc - clean.roc_auc:+.3f} | {row.sensitivity:.3f} "
            f"| {row.specificity:.3f} | {row.flags_changed:.1%} "
            f"| {row.median_probability_change:.3f} |"
        )
    clean = rows[0]
    short = [row for row in rows if row.sensitivity < target_sensitivity]
    worst = min(rows, key=lambda row: row.roc_auc)
    lines += [
        "",
        f"Largest ROC AUC drop: {worst.roc_auc - clean.roc_auc:+.3f} ({worst.condition}). "
        + (
            "Sensitivity falls below the target of "
            f"{target_sensitivity:.2f} under: "
            + ", ".join(
                f"{row.condition} ({round(row.sensitivity * malignant)} of {malignant} "
                "malignant images flagged)"
                for row in short
            )
            + "."
            if short
            else f"No condition brings sensitivity below the target of {target_sensitivity:.2f}."
        ),
        "The threshold was chosen on images like the training sources. A clinic whose camera "
        "differs from them should check the threshold on its own labelled images before relying "
        "on the flag.",
        "",
    ]
    return "\n".join(lines)


def write_results(
    rows: Sequence[ConditionResult], markdown: str, output: Path
) -> tuple[Path, Path]:
    """`output` (markdown) and the same rows as JSON beside it."""
    output.write_text(markdown)
    json_path = output.with_suffix(".json")
    json_path.write_text(json.dumps([row.to_dict() for row in rows], indent=2) + "\n")
    return output, json_path
