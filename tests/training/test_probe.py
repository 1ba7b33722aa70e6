"""The linear probe that screens backbones on frozen features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from training.cli import main
from training.data import load_dataset, split_dataset, write_split_csv
from training.probe import REGULARISATION_GRID, fit_linear_probe


def _features(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    # Two informative dimensions among twenty noisy ones.
    noise = rng.normal(size=(len(labels), 20))
    noise[:, :2] += labels[:, None] * 0.8
    return noise


def test_the_strength_is_chosen_on_validation_and_scored_once_on_test() -> None:
    rng = np.random.default_rng(0)
    labels = {
        name: rng.integers(0, 2, size)
        for name, size in (("train", 200), ("validation", 80), ("test", 80))
    }
    features = {name: _features(rng, y) for name, y in labels.items()}
    weights = np.ones(200)

    strength, validation_auc, test_auc = fit_linear_probe(features, labels, weights)

    # Independently: standardise on train, fit each strength, pick the best on validation.
    scaler = StandardScaler().fit(features["train"])
    by_strength = {}
    for candidate in REGULARISATION_GRID:
        model = LogisticRegression(C=candidate, max_iter=5000).fit(
            scaler.transform(features["train"]), labels["train"]
        )
        by_strength[candidate] = model
    expected = max(
        REGULARISATION_GRID,
        key=lambda c: roc_auc_score(
            labels["validation"],
            by_strength[c].decision_function(scaler.transform(features["validation"])),
        ),
    )
    assert strength == expected
    best = by_strength[expected]
    assert validation_auc == pytest.approx(
        roc_auc_score(
            labels["validation"], best.decision_function(scaler.transform(features["validation"]))
        )
    )
    assert test_auc == pytest.approx(
        roc_auc_score(labels["test"], best.decision_function(scaler.transform(features["test"])))
    )
    assert validation_auc > 0.7


def test_the_probe_command_scores_a_backbone_on_a_saved_split(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    split_csv = tmp_path / "split.csv"
    write_split_csv(
        split_dataset(
            load_dataset(tiny_dataset), seed=1, validation_fraction=0.25, test_fraction=0.25
        ),
        split_csv,
    )
    out = tmp_path / "probe.json"
    # Random weights: the mechanics are under test here, not ImageNet.
    monkeypatch.setattr("training.weights.resolve_lite_weights", lambda *_a, **_k: None)

    assert (
        main(
            [
                "probe",
                "--backbones",
                "lite0",
                "--data",
                str(tiny_dataset),
                "--split",
                str(split_csv),
                "--input-size",
                "32",
                "--json",
                str(out),
            ]
        )
        == 0
    )

    [result] = json.loads(out.read_text())
    assert result["backbone"] == "lite0"
    assert result["features"] == 1280
    assert result["regularisation"] in REGULARISATION_GRID
    assert 0.0 <= result["validation_auc"] <= 1.0
    assert 0.0 <= result["test_auc"] <= 1.0
