"""Linear probe: how well each backbone's frozen ImageNet features separate the two classes.

A screen that costs minutes on a CPU where fine-tuning a backbone costs an hour or more. Every
image of a saved split goes once through the frozen backbone (global average pooled); a
logistic regression on those features, with the same (label, source) loss weights as training,
is fitted on train, its regularisation chosen on validation ROC AUC, and then scored on test.
The test figure is printed for the record; choices are made on validation only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from training.config import Architecture
from training.data import SUBSETS, Split, balanced_sample_weights, load_pixels
from training.weights import Backbone

# Inverse regularisation strengths tried on standardised features; the best on validation wins.
REGULARISATION_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)


@dataclass(frozen=True)
class ProbeResult:
    backbone: str
    input_size: int
    features: int
    regularisation: float
    validation_auc: float
    test_auc: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def feature_extractor(backbone: Backbone, input_size: int, weights_path: Path | None) -> Any:
    """The backbone with global average pooling on top; random weights when no path is given."""
    import keras

    from training.backbones import build_base

    # Lite variants train as "efficientnet_<variant>" (training.config).
    architecture = cast(
        Architecture, backbone if backbone == "vgg16" else f"efficientnet_{backbone}"
    )
    base = build_base(architecture, input_size, weights_path=weights_path)
    pooled = keras.layers.GlobalAveragePooling2D(name="probe_pool")(base.output)
    return keras.Model(base.input, pooled, name=f"{backbone}_probe")


def fit_linear_probe(
    features: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    sample_weight: np.ndarray,
) -> tuple[float, float, float]:
    """Fit on train for each strength; return (strength, validation AUC, test AUC) of the best."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best: tuple[float, float, Any] | None = None
    for strength in REGULARISATION_GRID:
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=5000))
        probe.fit(
            features["train"], labels["train"], logisticregression__sample_weight=sample_weight
        )
        validation_auc = float(
            roc_auc_score(labels["validation"], probe.decision_function(features["validation"]))
        )
        if best is None or validation_auc > best[1]:
            best = (strength, validation_auc, probe)
    assert best is not None  # the grid is not empty
    strength, validation_auc, probe = best
    test_auc = float(roc_auc_score(labels["test"], probe.decision_function(features["test"])))
    return strength, validation_auc, test_auc


def run_probe(
    split: Split,
    backbones: Sequence[Backbone],
    weights: Mapping[str, Path | None],
    *,
    input_size: int,
    effective_resolution: int,
) -> list[ProbeResult]:
    """Probe each backbone on the same decoded pixels (decoded once, as inference decodes)."""
    pixels = {
        subset: load_pixels(
            split.subset(subset), input_size=input_size, effective_resolution=effective_resolution
        )
        for subset in SUBSETS
    }
    labels = {
        subset: np.array([sample.label for sample in split.subset(subset)]) for subset in SUBSETS
    }
    sample_weight = balanced_sample_weights(split.train, by_source=True)
    results = []
    for backbone in backbones:
        started = time.perf_counter()
        extractor = feature_extractor(backbone, input_size, weights[backbone])
        features = {
            subset: extractor.predict(pixels[subset], batch_size=32, verbose=0)
            for subset in SUBSETS
        }
        strength, validation_auc, test_auc = fit_linear_probe(features, labels, sample_weight)
        results.append(
            ProbeResult(
                backbone=backbone,
                input_size=input_size,
                features=int(features["train"].shape[1]),
                regularisation=strength,
                validation_auc=round(validation_auc, 4),
                test_auc=round(test_auc, 4),
                seconds=round(time.perf_counter() - started, 1),
            )
        )
        print(
            f"{backbone}: validation ROC AUC {validation_auc:.4f}, test {test_auc:.4f} "
            f"(C={strength}, {results[-1].features} features, {results[-1].seconds:.0f} s)",
            flush=True,
        )
    return results
