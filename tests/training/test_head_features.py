"""The frozen-base phase on cached features trains the classifier's own head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training import train as training_run
from training.config import Phase, TrainingConfig
from training.data import Sample

pytestmark = pytest.mark.slow


def _inputs(
    folder: Path, count: int, size: int, seed: int
) -> tuple[dict[str, tuple[Sample, ...]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Random images saved losslessly, as samples, with their pixels and labels."""
    rng = np.random.default_rng(seed)
    pixels = {
        name: rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
        for name in ("train", "validation")
    }
    labels = {name: rng.integers(0, 2, count) for name in pixels}
    samples = {}
    for name, images in pixels.items():
        paths = [folder / f"{name}_{index}.png" for index in range(count)]
        for path, image in zip(paths, images, strict=True):
            Image.fromarray(image).save(path)
        samples[name] = tuple(
            Sample(path, int(label), "x") for path, label in zip(paths, labels[name], strict=True)
        )
    return samples, pixels, labels


def _augmentation(config: TrainingConfig) -> training_run.TrainingAugmentation:
    return training_run.TrainingAugmentation(
        training_run.build_augmentation(config.augmentation, config.seed)
    )


def test_the_head_fitted_on_cached_features_is_the_classifiers_head(tmp_path: Path) -> None:
    phase = Phase("head", "head", epochs=2, learning_rate=1e-2, monitor="val_loss", patience=2)
    config = TrainingConfig(input_size=32, effective_resolution=32, batch_size=8, phases=(phase,))
    base, model = training_run.build_model(config, weights_path=None)
    samples, pixels, _ = _inputs(tmp_path, count=20, size=32, seed=0)
    training_run.set_trainable(base, "head", ())
    data = training_run._cached_feature_data(
        base,
        _augmentation(config),
        samples,
        np.linspace(0.5, 2.0, 20, dtype=np.float32),
        config,
    )
    head = training_run._head_model(model)
    before = model.get_weights()[-1].copy()
    training_run._compile(head, phase, steps_per_epoch=3)
    features, targets, weights = data.train
    head.fit(
        features,
        targets,
        sample_weight=weights,
        validation_data=data.validation,
        epochs=2,
        verbose=0,
    )

    # The head's weights are the classifier's: training one trained the other.
    assert not np.array_equal(model.get_weights()[-1], before)
    images = pixels["validation"].astype(np.float32)
    pooled = base.predict(images, verbose=0).mean(axis=(1, 2))
    through_head = head.predict(pooled, verbose=0)
    np.testing.assert_allclose(through_head, model.predict(images, verbose=0), atol=1e-5)


def test_cached_features_keep_each_image_with_its_label_and_weight(tmp_path: Path) -> None:
    # Effective resolution above the input size: the saved images are used as they are.
    config = TrainingConfig(input_size=32, effective_resolution=32, batch_size=8, phases=())
    base, _ = training_run.build_model(config, weights_path=None)
    samples, pixels, labels = _inputs(tmp_path, count=20, size=32, seed=1)
    weights = np.arange(1, 21, dtype=np.float32)
    data = training_run._cached_feature_data(base, _augmentation(config), samples, weights, config)
    features, targets, train_weights = data.train
    # Pooled features, one row of channels per image: what the head takes.
    assert features.shape == (20, base.output.shape[-1])
    np.testing.assert_array_equal(targets[:, 0], labels["train"].astype(np.float32))
    np.testing.assert_array_equal(train_weights, weights)

    # Validation features are the clean backbone output; training ones come from augmented views.
    validation_features, validation_targets = data.validation
    clean = base.predict(pixels["validation"].astype(np.float32), verbose=0).mean(axis=(1, 2))
    np.testing.assert_allclose(validation_features, clean, atol=1e-5)
    np.testing.assert_array_equal(validation_targets[:, 0], labels["validation"].astype(np.float32))
    clean_train = base.predict(pixels["train"].astype(np.float32), verbose=0).mean(axis=(1, 2))
    assert not np.allclose(features, clean_train, atol=1e-3)


def test_training_augmentation_is_off_outside_training_and_stays_in_pixel_range() -> None:
    config = TrainingConfig(input_size=32, augmentation="strong")
    augmentation = _augmentation(config)
    pixels = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    as_is = np.asarray(augmentation(pixels, training=False))
    np.testing.assert_array_equal(as_is, pixels.astype(np.float32))
    augmented = np.asarray(augmentation(pixels, training=True))
    assert augmented.dtype == np.float32
    assert augmented.min() >= 0.0
    assert augmented.max() <= 255.0
    assert not np.array_equal(augmented, as_is)


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_the_training_model_compiles_with_xla_on_jax_only(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Uncompiled, a JAX training step is dispatched op by op from Python (ten to forty times
    # slower on a GPU); on TensorFlow the image-transform op has no XLA kernel at all.
    import keras
    from keras.src.trainers.trainer import model_supports_jit

    monkeypatch.setattr(training_run.keras.backend, "backend", lambda: backend)
    augmentation = _augmentation(TrainingConfig(input_size=32, augmentation="strong"))
    classifier = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(2, 3)])
    fitted = training_run.with_augmentation(classifier, augmentation)
    assert model_supports_jit(fitted) is (backend == "jax")
