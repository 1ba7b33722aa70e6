"""The committed model on the real held-out test split it was evaluated on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from inference import Classifier
from training.data import LABELS, load_dataset

pytestmark = pytest.mark.slow


def test_the_committed_model_keeps_its_promises_on_the_real_test_split(
    classifier: Classifier, served_model_dir: Path, data_dir: Path
) -> None:
    dataset = load_dataset(data_dir)
    by_file = {sample.file: sample for sample in dataset.samples}
    with (served_model_dir / "split.csv").open(newline="") as handle:
        test_files = [row["file"] for row in csv.DictReader(handle) if row["subset"] == "test"]
    # A fixed sample: every test image, in the order the split file lists them.
    samples = [by_file[name] for name in test_files]
    labels = np.array([sample.label for sample in samples])

    probabilities = []
    for start in range(0, len(samples), 64):
        batch = samples[start : start + 64]
        probabilities += [p.probability for p in classifier.predict([s.path for s in batch])]
    probabilities_array = np.array(probabilities)
    flagged = probabilities_array >= classifier.threshold

    sensitivity = recall_score(labels, flagged)
    auc = roc_auc_score(labels, probabilities_array)
    assert sensitivity >= 0.90, f"sensitivity {sensitivity:.3f} on {len(samples)} test images"
    assert auc >= 0.85, f"ROC AUC {auc:.3f} on {len(samples)} test images"

    # The figures recorded in the artifact are the ones this model actually produces.
    recorded = json.loads((served_model_dir / "metadata.json").read_text())["test_metrics"]
    assert auc == pytest.approx(recorded["overall"]["roc_auc"], abs=0.01)
    assert (
        dataset.fingerprint
        == json.loads((served_model_dir / "metadata.json").read_text())["dataset"][
            "manifest_sha256"
        ]
    )
    assert tuple(classifier.metadata.labels) == LABELS
