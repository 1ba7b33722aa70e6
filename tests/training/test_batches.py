from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from inference.preprocessing import Preprocessing, prepare_batch
from training.batches import ImageBatches, predict_logits
from training.data import load_dataset


def test_batches_decode_as_serving_does_with_targets_and_weights(tiny_dataset: Path) -> None:
    samples = load_dataset(tiny_dataset).samples[:10]
    weights = np.arange(10, dtype=np.float32)
    batches = ImageBatches(samples, Preprocessing(32, 24), batch_size=4, sample_weights=weights)

    assert len(batches) == 3
    pixels, targets, batch_weights = batches[2]
    assert pixels.shape == (2, 32, 32, 3)
    assert pixels.dtype == np.uint8
    expected = prepare_batch([s.path for s in samples[8:]], input_size=32, effective_resolution=24)
    np.testing.assert_array_equal(pixels, expected)
    np.testing.assert_array_equal(targets[:, 0], [s.label for s in samples[8:]])
    np.testing.assert_array_equal(batch_weights, [8, 9])
    with pytest.raises(IndexError):
        batches[3]


def test_shuffled_batches_visit_every_image_once_per_epoch_in_a_new_order(
    tiny_dataset: Path,
) -> None:
    samples = load_dataset(tiny_dataset).samples[:12]
    weights = np.arange(12, dtype=np.float32)  # the weights say which image each row is
    batches = ImageBatches(
        samples,
        Preprocessing(16, 16),
        batch_size=5,
        sample_weights=weights,
        shuffle_seed=3,
    )

    def epoch() -> list[int]:
        order = [int(w) for index in range(len(batches)) for w in batches[index][2]]
        batches.on_epoch_end()
        return order

    first, second = epoch(), epoch()
    assert sorted(first) == sorted(second) == list(range(12))
    assert first != second


def test_streamed_logits_match_the_model_on_decoded_pixels(tiny_dataset: Path) -> None:
    samples = load_dataset(tiny_dataset).samples[:9]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input((16, 16, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(2, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    pixels = prepare_batch([s.path for s in samples], input_size=16, effective_resolution=16)
    direct = model(pixels.astype(np.float32)).numpy().reshape(-1)
    flipped = [pixels, pixels[:, :, ::-1], pixels[:, ::-1], pixels[:, ::-1, ::-1]]
    direct_tta = np.mean([model(v.astype(np.float32)).numpy().reshape(-1) for v in flipped], 0)

    streamed = predict_logits(model, samples, Preprocessing(16, 16), batch_size=4)
    streamed_tta = predict_logits(model, samples, Preprocessing(16, 16), batch_size=4, tta=True)
    np.testing.assert_allclose(streamed, direct, atol=1e-5)
    np.testing.assert_allclose(streamed_tta, direct_tta, atol=1e-5)
