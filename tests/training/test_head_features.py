"""The frozen-base phase on cached features trains the classifier's own head."""

from __future__ import annotations

import numpy as np
import pytest

from training import train as training_run
from training.config import Phase, TrainingConfig

pytestmark = pytest.mark.slow


def _inputs(
    count: int, size: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pixels = {
        name: rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
        for name in ("train", "validation")
    }
    labels = {name: rng.integers(0, 2, count) for name in pixels}
    return pixels, labels


def test_the_head_fitted_on_cached_features_is_the_classifiers_head() -> None:
    phase = Phase("head", "head", epochs=2, learning_rate=1e-2, monitor="val_loss", patience=2)
    config = TrainingConfig(input_size=32, batch_size=8, phases=(phase,))
    base, model = training_run._build(config, weights_path=None)
    pixels, labels = _inputs(count=20, size=32, seed=0)
    training_run.set_trainable(base, "head", ())
    train_data, validation_data = training_run._cached_feature_datasets(
        base, pixels, labels, np.linspace(0.5, 2.0, 20, dtype=np.float32), config
    )
    head = training_run._head_model(base, model)
    before = model.get_weights()[-1].copy()
    training_run._compile(head, phase, steps_per_epoch=3)
    head.fit(train_data, validation_data=validation_data, epochs=2, verbose=0)

    # The head's weights are the classifier's: training one trained the other.
    assert not np.array_equal(model.get_weights()[-1], before)
    images = pixels["validation"].astype(np.float32)
    through_head = head.predict(base.predict(images, verbose=0), verbose=0)
    np.testing.assert_allclose(through_head, model.predict(images, verbose=0), atol=1e-5)


def test_the_cached_training_set_keeps_every_image_with_its_label_and_weight() -> None:
    config = TrainingConfig(input_size=32, batch_size=8, phases=())
    base, _ = training_run._build(config, weights_path=None)
    pixels, labels = _inputs(count=20, size=32, seed=1)
    weights = np.arange(1, 21, dtype=np.float32)
    train_data, validation_data = training_run._cached_feature_datasets(
        base, pixels, labels, weights, config
    )
    rows = [(float(w), float(y[0])) for _, y, w in train_data.unbatch().as_numpy_iterator()]
    # Shuffled, but each weight still travels with its own image's label.
    assert sorted(rows) == sorted(
        zip(weights.tolist(), labels["train"].astype(float).tolist(), strict=True)
    )
    assert sum(1 for _ in validation_data.unbatch()) == 20
