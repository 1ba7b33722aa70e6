"""Keras layers that a served model file may contain beyond Keras's own.

Importing this module registers them, so `keras.models.load_model` can rebuild a model that
uses them; `inference.backends.load_keras_model` imports it before loading.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dermatriage")
class DiagnosisLogit(keras.layers.Layer):
    """The malignancy logit of a softmax over diagnoses.

    A linear layer scores each diagnosis; the probability of malignancy is the total softmax
    probability of the malignant diagnoses, and the layer returns its log-odds,
    logsumexp(malignant scores) - logsumexp(benign scores), with shape (batch, 1). The output
    is a logit like a Dense(1) layer's, so temperature scaling and the threshold apply as they
    do to a binary head. Fitting the layer against diagnoses rather than against the two labels
    lets it keep, for instance, basal cell carcinomas and melanomas apart, which look nothing
    alike and share only their label.
    """

    def __init__(self, diagnoses: Sequence[str], malignant: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.diagnoses = [str(name) for name in diagnoses]
        self.malignant = [str(name) for name in malignant]
        unknown = set(self.malignant) - set(self.diagnoses)
        if unknown:
            raise ValueError(f"malignant diagnoses {sorted(unknown)} are not among the diagnoses")
        self.malignant_indices = [i for i, name in enumerate(self.diagnoses) if name in malignant]
        self.benign_indices = [i for i, name in enumerate(self.diagnoses) if name not in malignant]
        if not self.malignant_indices or not self.benign_indices:
            raise ValueError("a diagnosis head needs a benign and a malignant diagnosis")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        features = input_shape[-1]
        if features is None:
            raise ValueError("a diagnosis head needs a known number of input features")
        self.kernel = self.add_weight(
            shape=(features, len(self.diagnoses)), initializer="zeros", name="kernel"
        )
        self.bias = self.add_weight(shape=(len(self.diagnoses),), initializer="zeros", name="bias")

    def call(self, features: Any) -> Any:
        scores = ops.matmul(features, self.kernel) + self.bias
        malignant = ops.take(scores, self.malignant_indices, axis=1)
        benign = ops.take(scores, self.benign_indices, axis=1)
        return ops.logsumexp(malignant, axis=1, keepdims=True) - ops.logsumexp(
            benign, axis=1, keepdims=True
        )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int]:
        return (input_shape[0], 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "diagnoses": self.diagnoses, "malignant": self.malignant}
