"""Refitting the final layer: the fit against scikit-learn, and the layer it writes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from training.head_refit import (
    HEAD_LAYER,
    STRENGTH_TOLERANCE,
    LinearHead,
    fit_linear_head,
    penultimate_model,
    with_head,
)


def _features(seed: int, count: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Features on very different scales, of which a few carry the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    features = rng.normal(0.0, 1.0, (count, 12)) * np.geomspace(0.01, 100.0, 12) + 5.0
    features[:, :3] += labels[:, None] * np.array([0.02, 1.0, 30.0])
    return features, labels


def test_the_head_is_the_best_validation_regression_with_scaling_and_prior_folded_in() -> None:
    train_features, train_labels = _features(0)
    validation_features, validation_labels = _features(1)
    weights = np.where(train_labels == 1, 2.0, 1.0)
    strengths = (1e-3, 1e-2, 1e-1)

    head = fit_linear_head(
        train_features,
        train_labels,
        weights,
        validation_features,
        validation_labels,
        strengths=strengths,
    )

    independent = {}
    for strength in strengths:
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=5000))
        pipeline.fit(train_features, train_labels, logisticregression__sample_weight=weights)
        independent[strength] = pipeline
    aucs = {
        strength: roc_auc_score(validation_labels, p.decision_function(validation_features))
        for strength, p in independent.items()
    }
    assert head.validation_auc_by_strength == pytest.approx(aucs)
    # The strongest penalty within the tolerance of the best.
    near_best = [s for s in strengths if aucs[s] >= max(aucs.values()) - STRENGTH_TOLERANCE]
    assert head.strength == min(near_best)
    # The intercept moves from the weighted malignant share to the plain one.
    weighted_share = np.sum(weights * train_labels) / np.sum(weights)
    plain_share = np.mean(train_labels)
    shift = np.log(plain_share / (1 - plain_share)) - np.log(weighted_share / (1 - weighted_share))
    np.testing.assert_allclose(
        head.logits(validation_features),
        independent[head.strength].decision_function(validation_features) + shift,
        rtol=1e-6,
        atol=1e-6,
    )


def test_near_ties_go_to_the_stronger_penalty(monkeypatch: pytest.MonkeyPatch) -> None:
    from training import head_refit

    aucs = iter([0.8000, 0.8870, 0.8881, 0.8883, 0.8852])
    monkeypatch.setattr(head_refit, "roc_auc_score", lambda *_: next(aucs))
    features, labels = _features(4)
    head = fit_linear_head(features, labels, np.ones(len(labels)), features, labels)
    # 0.8881 is within 0.001 of the best, 0.8883 at 3e-3; 0.8870 at 3e-4 is not.
    assert head.strength == 1e-3


def test_a_constant_feature_does_not_divide_by_zero() -> None:
    features, labels = _features(2)
    features[:, 5] = 7.0
    head = fit_linear_head(features, labels, np.ones(len(labels)), features, labels)
    assert np.isfinite(head.kernel).all()
    assert head.kernel[5] == 0.0


def _tiny_classifier() -> keras.Model:
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(4, activation="relu", name="head_dense")(inputs)
    dropped = keras.layers.Dropout(0.5, name="head_dropout")(hidden)
    logit = keras.layers.Dense(1, name=HEAD_LAYER)(dropped)
    return keras.Model(inputs, logit)


def test_the_installed_head_gives_the_models_logits() -> None:
    model = _tiny_classifier()
    images = np.random.default_rng(3).normal(size=(10, 6)).astype(np.float32)
    features = penultimate_model(model).predict(images, verbose=0)
    assert features.shape == (10, 4)
    head = LinearHead(kernel=np.array([0.5, -1.0, 2.0, 0.25]), bias=-0.3, strength=1.0)

    assert with_head(model, head) is model

    np.testing.assert_allclose(
        model.predict(images, verbose=0).reshape(-1), head.logits(features), rtol=1e-5, atol=1e-5
    )


def test_a_head_of_the_wrong_width_is_refused() -> None:
    head = LinearHead(kernel=np.zeros(3), bias=0.0, strength=1.0)
    with pytest.raises(ValueError, match="the head has 3 weights; layer malignancy_logit takes 4"):
        with_head(_tiny_classifier(), head)


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (True, "refitted as an L2-regularised logistic regression on the training images'"),
        (False, "Refitting the final layer was measured and not kept"),
    ],
)
def test_the_card_says_whether_the_refit_was_kept_and_why(used: bool, expected: str) -> None:
    from training.model_card import head_refit_sentence

    choice = {
        "used": used,
        "validation_roc_auc_trained": 0.876,
        "validation_roc_auc_refit": 0.888,
        "strength": 0.003,
        "decided_by": "validation gain >= 0.005",
    }
    sentence = head_refit_sentence(choice)
    assert expected in sentence
    assert "0.888 refitted against 0.876 as trained" in sentence
    assert head_refit_sentence({"used": False, "decided_by": "turned off"}) == ""
    assert head_refit_sentence(None) == ""
