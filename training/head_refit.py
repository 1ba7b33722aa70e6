"""Refit a trained classifier's final layer as a regularised logistic regression.

After fine-tuning, the network's last layer has been fitted by gradient descent with dropout,
together with everything beneath it, and was kept at the epoch of best validation ROC AUC. On the
served Lite0, a logistic regression fitted afresh on the same penultimate features of the
training images (standardised, L2-penalised, with the training's loss weights) ranked the
validation images better: ROC AUC 0.888 against 0.876, and test 0.907 against 0.894. The new
layer is the same Dense(1) with other weights, so the served model keeps its shape, its size
and its speed.

The regression is fitted with the training's loss weights, under which malignant and benign
weigh the same; its intercept is then moved back to the training images' own malignant share
(the prior-shift correction of Saerens et al., 2002), which changes no ranking but leaves
temperature scaling less to mend: on the served Lite0, ECE after temperature 0.044 on validation
and 0.053 on test, against 0.079 and 0.078 uncorrected.

A diagnosis head is the same regression over the training images' diagnoses, its probability of
malignancy that of the malignant ones. On the served Lite0 it ranked validation better overall
(0.895 against 0.888) but not within either source (0.871 against 0.873 averaged), because most
diagnoses come from one source only; `training.pipeline` weighs both before taking it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

HEAD_LAYER = "malignancy_logit"
# Inverse L2 strengths (scikit-learn's C) tried on standardised features.
STRENGTHS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
# The strongest penalty whose validation ROC AUC is within this of the best is kept: 545
# validation images cannot tell apart strengths closer than that (the served model's best two
# differed by 0.0002), and the stronger penalty strays less from what the network learned.
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


@dataclass(frozen=True)
class DiagnosisHead:
    """A multinomial regression over diagnoses on raw penultimate features, collapsed to the
    log-odds of the malignant ones (served as `inference.layers.DiagnosisLogit`)."""

    kernel: np.ndarray  # (features, diagnoses)
    bias: np.ndarray  # (diagnoses,)
    diagnoses: tuple[str, ...]
    malignant: tuple[str, ...]
    strength: float
    validation_auc_by_strength: dict[float, float] = field(default_factory=dict)

    def logits(self, features: np.ndarray) -> np.ndarray:
        scores = np.asarray(features, dtype=np.float64) @ self.kernel + self.bias
        return _collapse(scores, np.isin(self.diagnoses, self.malignant))


Head = LinearHead | DiagnosisHead
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


def fit_diagnosis_head(
    train_features: np.ndarray,
    train_diagnoses: Sequence[str],
    malignant_diagnoses: Sequence[str],
    sample_weight: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    *,
    strengths: Sequence[float] = STRENGTHS,
) -> DiagnosisHead:
    """As `fit_linear_head`, with a multinomial regression over the training images'
    diagnoses, scored by the malignant diagnoses' total probability. Each diagnosis's intercept
    moves from its weighted share to its unweighted one, the same prior correction per class."""
    diagnosis_of = np.asarray(train_diagnoses, dtype=str)
    diagnoses = tuple(sorted(set(diagnosis_of.tolist())))
    malignant = tuple(name for name in diagnoses if name in set(malignant_diagnoses))
    malignant_mask = np.isin(diagnoses, malignant)
    # Two diagnoses, one per label, would be the binary head fitted again.
    if len(diagnoses) < 3 or malignant_mask.all() or not malignant_mask.any():
        raise ValueError(
            "a diagnosis head needs three or more training diagnoses, benign and malignant"
        )
    # Unlike the binary head's, this correction changes the ranking (it weighs the diagnoses
    # against each other inside each label), so the strengths are compared with it applied.
    plain_share = np.array([np.mean(diagnosis_of == name) for name in diagnoses])
    weighted_share = np.array(
        [np.average(diagnosis_of == name, weights=sample_weight) for name in diagnoses]
    )
    prior_shift = np.log(plain_share) - np.log(weighted_share)
    scaling = _Standardisation.of(train_features)
    standardised, validation = scaling(train_features), scaling(validation_features)

    def fit(strength: float) -> _Fit:
        regression = LogisticRegression(C=strength, max_iter=5000)
        regression.fit(standardised, diagnosis_of, sample_weight=sample_weight)
        if tuple(regression.classes_) != diagnoses:
            raise AssertionError("scikit-learn ordered the diagnoses differently")
        scores = regression.decision_function(validation) + prior_shift
        return regression.coef_, regression.intercept_, _collapse(scores, malignant_mask)

    best, (coefficients, intercepts, _), auc_by_strength = _fit_each_strength(
        fit, validation_labels, strengths
    )
    kernel = (coefficients / scaling.scale).T  # (features, diagnoses)
    return DiagnosisHead(
        kernel=kernel,
        bias=intercepts - scaling.mean @ kernel + prior_shift,
        diagnoses=diagnoses,
        malignant=malignant,
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


def _collapse(scores: np.ndarray, malignant_mask: np.ndarray) -> np.ndarray:
    """Log-odds of the malignant diagnoses' total softmax probability."""
    return logsumexp(scores[:, malignant_mask], axis=1) - logsumexp(
        scores[:, ~malignant_mask], axis=1
    )


def _log_odds(share: float) -> float:
    return float(np.log(share) - np.log1p(-share))


def with_head(model: Any, head: Head) -> Any:
    """`model` with `head` as its final layer: a linear head's weights go into the Dense(1)
    layer in place; a diagnosis head replaces that layer, under the same name, in a new model
    that shares every other layer."""
    layer = model.get_layer(HEAD_LAYER)
    if isinstance(head, DiagnosisHead):
        import keras

        from inference.layers import DiagnosisLogit

        diagnosis_layer = DiagnosisLogit(
            head.diagnoses, head.malignant, dtype="float32", name=HEAD_LAYER
        )
        logit = diagnosis_layer(layer.input)
        diagnosis_layer.set_weights([head.kernel.astype(np.float32), head.bias.astype(np.float32)])
        return keras.Model(model.inputs, logit, name=model.name)
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
