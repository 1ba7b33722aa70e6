"""The layers a served model file may hold beyond Keras's own."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.special import softmax

from inference.layers import DiagnosisLogit


def test_the_diagnosis_logit_is_the_log_odds_of_the_malignant_diagnoses_probability() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(16, 5)).astype(np.float32)
    kernel = rng.normal(size=(5, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    layer = DiagnosisLogit(["bcc", "dermatofibroma", "melanoma", "naevus"], ["melanoma", "bcc"])
    layer.build((None, 5))
    layer.set_weights([kernel, bias])

    logits = np.asarray(layer(features))

    probabilities = softmax(features.astype(np.float64) @ kernel + bias, axis=1)
    malignant = probabilities[:, 0] + probabilities[:, 2]
    assert logits.shape == (16, 1)
    np.testing.assert_allclose(logits[:, 0], np.log(malignant / (1 - malignant)), atol=1e-5)


def test_it_rebuilds_from_its_config() -> None:
    layer = DiagnosisLogit(["a", "b", "c"], ["c"], name="malignancy_logit")
    rebuilt = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(rebuilt, DiagnosisLogit)
    assert (rebuilt.diagnoses, rebuilt.malignant, rebuilt.name) == (
        ["a", "b", "c"],
        ["c"],
        "malignancy_logit",
    )


@pytest.mark.parametrize(
    ("malignant", "message"),
    [
        (["d"], "malignant diagnoses \\['d'\\] are not among the diagnoses"),
        ([], "needs a benign and a malignant diagnosis"),
        (["a", "b", "c"], "needs a benign and a malignant diagnosis"),
    ],
)
def test_an_impossible_split_of_diagnoses_is_refused(malignant: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DiagnosisLogit(["a", "b", "c"], malignant)
