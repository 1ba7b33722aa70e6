"""Tiny generated datasets for exercising the training pipeline in seconds."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw


def _lesion(rng: np.random.Generator, malignant: bool, size: int) -> Image.Image:
    """A skin-coloured square with a blob: dark and irregular for malignant, light and round."""
    skin = tuple(int(v) for v in rng.integers(170, 230, 3))
    image = Image.new("RGB", (size, size), skin)
    draw = ImageDraw.Draw(image)
    radius = size * (0.3 if malignant else 0.2)
    centre = size / 2 + rng.normal(0, size * 0.05, 2)
    colour = (40, 25, 20) if malignant else (150, 100, 70)
    draw.ellipse(
        [centre[0] - radius, centre[1] - radius * 0.8, centre[0] + radius, centre[1] + radius],
        fill=colour,
    )
    return image


# Two diagnoses under each label, as in a real dermoscopy set.
DIAGNOSES = {"benign": ("naevus", "keratosis"), "malignant": ("melanoma", "carcinoma")}


TWO_SOURCES = (("small-source", 40), ("large-source", 56))


def write_tiny_dataset(
    root: Path,
    *,
    per_class_and_source: int = 12,
    seed: int = 0,
    sources: tuple[tuple[str, int], ...] = TWO_SOURCES,
) -> Path:
    """A manifest-layout dataset with `sources` (name, image size): by default two sources of
    different resolutions."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for source, size in sources:
        for label in ("benign", "malignant"):
            for index in range(per_class_and_source):
                name = f"{source}_{label}_{index:03d}.jpg"
                _lesion(rng, label == "malignant", size).save(images / name, quality=90)
                diagnosis = DIAGNOSES[label][index % 2]
                rows.append(
                    {"file": name, "label": label, "diagnosis": diagnosis, "source": source}
                )
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "label", "diagnosis", "source"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data")
