"""Simulated camera differences: the perturbations, the summary's figures, the command."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix, roc_auc_score

from inference import default_model_dir, load_classifier
from training.cli import main
from training.data import load_dataset
from training.robustness import PERTURBATIONS, Perturbation, score_conditions, summarise

from .conftest import write_tiny_dataset

RESOLUTION = 180


def _textured_image(width: int = 320, height: int = 240) -> Image.Image:
    rng = np.random.default_rng(3)
    pixels = rng.integers(60, 200, (height, width, 3)).astype(np.uint8)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("perturbation", PERTURBATIONS, ids=lambda p: p.name)
def test_every_perturbation_changes_the_image_the_same_way_for_the_same_seed(
    perturbation: Perturbation,
) -> None:
    image = _textured_image()
    first = perturbation.apply(image, RESOLUTION, np.random.default_rng([0, 5]))
    again = perturbation.apply(image, RESOLUTION, np.random.default_rng([0, 5]))

    assert first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(again))
    if first.size == image.size:
        assert not np.array_equal(np.asarray(first), np.asarray(image))
    else:
        # Only the low-resolution camera changes the size: its shorter side is 60% of RESOLUTION.
        assert min(first.size) == round(0.6 * RESOLUTION)
    # The original is never modified in place.
    assert np.array_equal(np.asarray(image), np.asarray(_textured_image()))


def test_the_summary_agrees_with_scikit_learn_on_synthetic_scores() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    clean = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 400), 0, 1)
    shifted = np.clip(clean + rng.normal(0, 0.15, 400), 0, 1)
    threshold = 0.4

    rows = summarise(
        {"clean": clean, PERTURBATIONS[0].name: shifted}, labels, threshold, PERTURBATIONS[:1]
    )

    assert [row.condition for row in rows] == ["clean", PERTURBATIONS[0].name]
    for row, scores in zip(rows, (clean, shifted), strict=True):
        tn, fp, fn, tp = confusion_matrix(labels, scores >= threshold).ravel()
        assert row.roc_auc == pytest.approx(roc_auc_score(labels, scores))
        assert row.sensitivity == pytest.approx(tp / (tp + fn))
        assert row.specificity == pytest.approx(tn / (tn + fp))
    assert rows[0].flags_changed == 0.0
    assert rows[0].median_probability_change == 0.0
    assert rows[1].flags_changed == pytest.approx(
        np.mean((clean >= threshold) != (shifted >= threshold))
    )
    assert rows[1].median_probability_change == pytest.approx(np.median(np.abs(shifted - clean)))


@pytest.fixture(scope="module")
def served_copy_on_tiny_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The served artifact with a split.csv naming a tiny generated dataset's images."""
    root = tmp_path_factory.mktemp("robustness")
    data = write_tiny_dataset(root / "data", per_class_and_source=4)
    model = root / "model"
    shutil.copytree(default_model_dir(), model)
    with (model / "split.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "source", "subset"])
        for sample in load_dataset(data).samples:
            writer.writerow([sample.file, "", sample.source, "test"])
    return model, data


def test_clean_scores_are_the_served_scores_of_the_decoded_images(
    served_copy_on_tiny_data: tuple[Path, Path],
) -> None:
    model, data = served_copy_on_tiny_data
    classifier = load_classifier(model)
    samples = load_dataset(data).samples[:6]

    scores = score_conditions(classifier, samples, PERTURBATIONS[:2], seed=1)

    decoded = [np.asarray(Image.open(s.path).convert("RGB")) for s in samples]
    expected = [p.probability for p in classifier.predict(decoded)]
    assert scores["clean"] == pytest.approx(expected, abs=1e-6)
    assert set(scores) == {"clean", PERTURBATIONS[0].name, PERTURBATIONS[1].name}
    assert all(len(values) == len(samples) for values in scores.values())
    # Seeded: the same call gives the same figures.
    again = score_conditions(classifier, samples, PERTURBATIONS[:2], seed=1)
    for name, values in scores.items():
        assert np.array_equal(values, again[name])


def test_the_command_writes_a_table_with_every_condition_and_the_disclaimer(
    served_copy_on_tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    model, data = served_copy_on_tiny_data
    output = tmp_path / "robustness.md"

    assert (
        main(["robustness", "--model", str(model), "--data", str(data), "--output", str(output)])
        == 0
    )

    page = output.read_text()
    rows = json.loads(output.with_suffix(".json").read_text())
    assert "not a medical device" in page
    assert [row["condition"] for row in rows] == ["clean", *(p.name for p in PERTURBATIONS)]
    for row in rows:
        assert f"| {row['condition']} |" in page
        assert 0.0 <= row["roc_auc"] <= 1.0
    assert "python -m training robustness" in page
