"""Refit a trained classifier's final layer as a regularised logistic regression.

After fine-tuning, the network's last layer has been fitted by gradient descent with dropout,
together with everything beneath it, and was kept at the epoch chosen on validation. A logistic
regression fitted afresh on the same penultimate features of the training images (standardised,
L2-penalised, with the training's loss weights) can rank validation better; `training.pipeline`
keeps it only where it does. The new layer is the same Dense(1) with other weights, so the
served model keeps its shape, size and speed.

The regression is fitted with the training's loss weights, under which malignant and benign
weigh the same; its intercept is then moved back to the training images' own malignant share
(the prior-shift correction of Saerens et al., 2002), which changes no ranking but leaves
temperature scaling less to mend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from inference.artifact import LOGIT_LAYER

HEAD_LAYER = LOGIT_LAYER
# Inverse L2 strengths (scikit-learn's C) tried on standardised features.
STRENGTHS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
# The strongest penalty whose validation ROC AUC is within this of the best is kept: a
# validation set cannot tell apart strengths that close, and the stronger penalty strays less
# from what the network learned.
STRENGTH_TOLERANCE = 0.001


@dataclass(frozen=True)
class LinearHead:
    """A logistic regression on raw penultimate features: logit = features @ kernel + bias."""

    kernel: np.ndarray  # (features,)
    bias: float
    strength: float
    validation_auc_by_strength: dict[float, float] = field(default_factory=dict)

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.kernel + self.bias


_Fit = tuple[np.ndarray, np.ndarray, np.ndarray]  # coefficients, intercepts, validation logits


def penultimate_model(model: Any) -> Any:
    """`model` up to the input of its final logit layer (dropout is off at inference)."""
    import keras

    return keras.Model(model.inputs, model.get_layer(HEAD_LAYER).input, name="penultimate")


def fit_linear_head(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    sample_weight: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    *,
    strengths: Sequence[float] = STRENGTHS,
) -> LinearHead:
    """Fit one logistic regression per strength on standardised training features; keep the
    strongest penalty within STRENGTH_TOLERANCE of the best validation ROC AUC, with the
    standardisation folded into its weights and its intercept moved from the weighted
    malignant share to the unweighted one."""
    scaling = _Standardisation.of(train_features)
    standardised, validation = scaling(train_features), scaling(validation_features)

    def fit(strength: float) -> _Fit:
        regression = LogisticRegression(C=strength, max_iter=5000)
        regression.fit(standardised, train_labels, sample_weight=sample_weight)
        validation_logits = regression.decision_function(validation)
        return regression.coef_[0], regression.intercept_, validation_logits

    best, (coefficients, intercept, _), auc_by_strength = _fit_each_strength(
        fit, validation_labels, strengths
    )
    kernel = coefficients / scaling.scale
    prior_shift = _log_odds(np.mean(train_labels)) - _log_odds(
        np.average(train_labels, weights=sample_weight)
    )
    return LinearHead(
        kernel=kernel,
        bias=float(intercept[0]) - float(np.dot(kernel, scaling.mean)) + prior_shift,
        strength=best,
        validation_auc_by_strength=auc_by_strength,
    )


@dataclass(frozen=True)
class _Standardisation:
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> _Standardisation:
        features = np.asarray(features, dtype=np.float64)
        # Features that never vary (a dead channel) get scale 1 instead of a division by zero.
        scale = features.std(axis=0)
        scale[scale == 0] = 1.0
        return cls(mean=features.mean(axis=0), scale=scale)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float64) - self.mean) / self.scale


def _fit_each_strength(
    fit: Callable[[float], _Fit], validation_labels: np.ndarray, strengths: Sequence[float]
) -> tuple[float, _Fit, dict[float, float]]:
    """Fit at every strength; the strongest penalty within STRENGTH_TOLERANCE of the best
    validation ROC AUC, its fit, and every strength's validation ROC AUC."""
    fitted = {strength: fit(strength) for strength in strengths}
    auc_by_strength = {
        strength: float(roc_auc_score(validation_labels, logits))
        for strength, (_, _, logits) in fitted.items()
    }
    best_auc = max(auc_by_strength.values())
    best = min(s for s in strengths if auc_by_strength[s] >= best_auc - STRENGTH_TOLERANCE)
    return best, fitted[best], auc_by_strength


def _log_odds(share: float) -> float:
    return float(np.log(share) - np.log1p(-share))


def with_head(model: Any, head: LinearHead) -> Any:
    """`model` with `head`'s weights in its Dense(1) logit layer, in place."""
    layer = model.get_layer(HEAD_LAYER)
    kernel, bias = layer.get_weights()
    if kernel.shape != (head.kernel.size, 1):
        raise ValueError(
            f"the head has {head.kernel.size} weights; layer {HEAD_LAYER} takes {kernel.shape[0]}"
        )
    layer.set_weights(
        [
            head.kernel.reshape(kernel.shape).astype(kernel.dtype),
            np.full(bias.shape, head.bias, dtype=bias.dtype),
        ]
    )
    return model
