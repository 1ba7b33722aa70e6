"""Refitting the final layer: the fit against scikit-learn, and the layer it writes."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from inference.backends import load_keras_model
from inference.layers import DiagnosisLogit
from training.head_refit import (
    HEAD_LAYER,
    STRENGTH_TOLERANCE,
    DiagnosisHead,
    LinearHead,
    fit_diagnosis_head,
    fit_linear_head,
    penultimate_model,
    with_head,
)

DIAGNOSES = ("carcinoma", "keratosis", "melanoma", "naevus")
MALIGNANT = ("carcinoma", "melanoma")


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


def _diagnosed(seed: int, count: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, diagnoses and labels: each diagnosis has its own direction in the features."""
    rng = np.random.default_rng(seed)
    diagnoses = rng.choice(DIAGNOSES, count, p=[0.15, 0.2, 0.15, 0.5])
    features = rng.normal(0.0, 1.0, (count, 8)) * np.geomspace(0.1, 10.0, 8) + 3.0
    for index, name in enumerate(DIAGNOSES):
        features[diagnoses == name, index] += 1.5 * np.geomspace(0.1, 10.0, 8)[index]
    return features, diagnoses, np.isin(diagnoses, MALIGNANT).astype(int)


def test_the_diagnosis_head_is_the_best_validation_multinomial_regression_with_priors() -> None:
    train_features, train_diagnoses, train_labels = _diagnosed(0)
    validation_features, _, validation_labels = _diagnosed(1)
    weights = np.where(train_labels == 1, 2.5, 1.0)
    strengths = (1e-3, 1e-2, 1e-1)

    head = fit_diagnosis_head(
        train_features,
        list(train_diagnoses),
        list(MALIGNANT),
        weights,
        validation_features,
        validation_labels,
        strengths=strengths,
    )

    assert head.diagnoses == DIAGNOSES
    assert head.malignant == MALIGNANT
    plain = np.array([np.mean(train_diagnoses == d) for d in DIAGNOSES])
    weighted = np.array([np.sum(weights * (train_diagnoses == d)) for d in DIAGNOSES])
    weighted /= weights.sum()

    def malignant_log_odds(pipeline: object, features: np.ndarray) -> np.ndarray:
        # Softmax probabilities re-weighted from the weighted diagnosis shares to the plain ones.
        probabilities = pipeline.predict_proba(features) * plain / weighted  # type: ignore[attr-defined]
        malignant = probabilities[:, np.isin(DIAGNOSES, MALIGNANT)].sum(axis=1)
        benign = probabilities[:, ~np.isin(DIAGNOSES, MALIGNANT)].sum(axis=1)
        return np.log(malignant) - np.log(benign)

    independent = {}
    for strength in strengths:
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=5000))
        pipeline.fit(train_features, train_diagnoses, logisticregression__sample_weight=weights)
        independent[strength] = pipeline
    aucs = {
        strength: roc_auc_score(validation_labels, malignant_log_odds(p, validation_features))
        for strength, p in independent.items()
    }
    assert head.validation_auc_by_strength == pytest.approx(aucs)
    near_best = [s for s in strengths if aucs[s] >= max(aucs.values()) - STRENGTH_TOLERANCE]
    assert head.strength == min(near_best)
    np.testing.assert_allclose(
        head.logits(validation_features),
        malignant_log_odds(independent[head.strength], validation_features),
        rtol=1e-6,
        atol=1e-6,
    )


def test_a_diagnosis_head_needs_more_than_one_diagnosis_per_side_of_the_label() -> None:
    features, diagnoses, labels = _diagnosed(2)
    two = np.where(np.isin(diagnoses, MALIGNANT), "melanoma", "naevus")
    with pytest.raises(ValueError, match="three or more training diagnoses"):
        fit_diagnosis_head(features, list(two), ["melanoma"], np.ones(400), features, labels)
    with pytest.raises(ValueError, match="benign and malignant"):
        fit_diagnosis_head(features, list(diagnoses), [], np.ones(400), features, labels)


def test_an_installed_diagnosis_head_gives_the_models_logits_and_survives_a_save(
    tmp_path: Path,
) -> None:
    model = _tiny_classifier()
    images = np.random.default_rng(5).normal(size=(10, 6)).astype(np.float32)
    features = penultimate_model(model).predict(images, verbose=0)
    rng = np.random.default_rng(6)
    head = DiagnosisHead(
        kernel=rng.normal(size=(4, 4)),
        bias=rng.normal(size=4),
        diagnoses=DIAGNOSES,
        malignant=MALIGNANT,
        strength=1.0,
    )

    served = with_head(model, head)

    assert isinstance(served.get_layer(HEAD_LAYER), DiagnosisLogit)
    assert served.get_layer("head_dense") is model.get_layer("head_dense")
    logits = served.predict(images, verbose=0).reshape(-1)
    np.testing.assert_allclose(logits, head.logits(features), rtol=1e-5, atol=1e-5)
    served.save(tmp_path / "model.keras")
    reloaded = load_keras_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(images, verbose=0).reshape(-1), logits, rtol=1e-6)
    assert reloaded.get_layer(HEAD_LAYER).get_config()["malignant"] == list(MALIGNANT)


def _refit_choice(**changes: object) -> dict[str, object]:
    """A head-refit record, as `finalize` writes it, for a diagnosis head kept over a binary
    one; `changes` override its entries."""
    return {
        "used": True,
        "kind": "diagnosis",
        "validation_roc_auc_trained": 0.876,
        "validation_roc_auc_refit": 0.895,
        "validation_roc_auc_by_kind": {"binary": 0.888, "diagnosis": 0.895},
        "validation_source_balanced_roc_auc_by_kind": {"binary": 0.873, "diagnosis": 0.880},
        "strength": 0.003,
        "diagnoses": list(DIAGNOSES),
        "malignant_diagnoses": list(MALIGNANT),
        "decided_by": "validation gain >= 0.005",
        **changes,
    }


def test_the_card_names_a_diagnosis_head_and_the_binary_refit_it_beat() -> None:
    from training.model_card import head_refit_sentence

    sentence = head_refit_sentence(_refit_choice())
    assert "multinomial logistic regression over the training images' 4 diagnoses" in sentence
    assert "malignant ones, carcinoma, melanoma (C = 0.003;" in sentence
    assert "0.895 refitted against 0.876 as trained, 0.888 with a binary refit" in sentence


def test_the_card_says_why_a_fitted_diagnosis_head_was_not_kept() -> None:
    from training.model_card import head_refit_sentence

    sentence = head_refit_sentence(
        _refit_choice(
            kind="binary",
            validation_roc_auc_refit=0.888,
            validation_source_balanced_roc_auc_by_kind={"binary": 0.873, "diagnosis": 0.871},
            strength=0.001,
        )
    )
    assert "logistic regression on the training images' features (C = 0.001;" in sentence
    assert "A head over the 4 diagnoses was fitted too and not kept" in sentence
    assert "0.895 against 0.888, but 0.871 against 0.873 averaged within sources" in sentence
