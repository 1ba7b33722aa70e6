"""The committed model on a fixed sample of the test split it was evaluated on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from inference import Classifier
from training.data import LABELS, Dataset, read_split_csv

pytestmark = pytest.mark.slow

# Every other test image, in the order the split file lists them: the same images on every
# run, spread over every source, in half the time of the whole split.
SAMPLE_STEP = 2


def test_the_committed_model_keeps_its_promises_on_the_real_test_split(
    classifier: Classifier, served_model_dir: Path, dataset: Dataset
) -> None:
    split = read_split_csv(served_model_dir / "split.csv", dataset)
    samples = split.test[::SAMPLE_STEP]
    labels = np.array([sample.label for sample in samples])

    probabilities = []
    for start in range(0, len(samples), 64):
        batch = samples[start : start + 64]
        probabilities += [p.probability for p in classifier.predict([s.path for s in batch])]
    probabilities_array = np.array(probabilities)
    flagged = probabilities_array >= classifier.threshold

    sensitivity = recall_score(labels, flagged)
    auc = roc_auc_score(labels, probabilities_array)
    assert sensitivity >= 0.93, f"sensitivity {sensitivity:.3f} on {len(samples)} test images"
    assert auc >= 0.90, f"ROC AUC {auc:.3f} on {len(samples)} test images"

    # The figures recorded in the artifact are the ones this model produces: the sample's
    # ROC AUC lies within a few bootstrap standard errors of the whole split's.
    metadata = json.loads((served_model_dir / "metadata.json").read_text())
    assert auc == pytest.approx(metadata["test_metrics"]["overall"]["roc_auc"], abs=0.02)
    assert dataset.fingerprint == metadata["dataset"]["manifest_sha256"]
    assert tuple(classifier.metadata.labels) == LABELS
