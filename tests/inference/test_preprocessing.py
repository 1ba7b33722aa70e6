"""Decoding and resizing uploads into model input."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from inference import ImageDecodeError
from inference.preprocessing import (
    Preprocessing,
    open_image,
    prepare_batch,
    prepare_image,
    shades_of_grey,
)

SIZES: dict[str, Any] = {"input_size": 64, "effective_resolution": 48}


def _jpeg(seed: int, size: tuple[int, int] = (120, 90)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_a_batch_decoded_in_parallel_equals_its_images_decoded_one_by_one() -> None:
    images = [_jpeg(seed) for seed in range(9)]
    batch = prepare_batch(images, **SIZES)
    assert batch.shape == (9, 64, 64, 3)
    assert batch.dtype == np.uint8
    for index, data in enumerate(images):
        np.testing.assert_array_equal(batch[index], prepare_image(data, **SIZES))


def test_the_first_bad_image_in_order_is_the_error_raised(tmp_path: Path) -> None:
    images: list[bytes | str] = [_jpeg(0), b"not an image", _jpeg(1), str(tmp_path / "gone.jpg")]
    with pytest.raises(ImageDecodeError, match="not a readable image"):
        prepare_batch(images, **SIZES)


def test_a_large_jpeg_decoded_at_reduced_size_matches_a_full_decode_closely() -> None:
    large = _jpeg(3, size=(1600, 1200))
    reduced = prepare_image(large, **SIZES).astype(np.int16)
    full = Image.open(io.BytesIO(large)).convert("RGB")
    full = full.resize((48, 48), Image.Resampling.LANCZOS).resize((64, 64))
    # Not identical (the DCT-domain downscale rounds differently), but the same picture.
    assert np.abs(reduced - np.asarray(full, dtype=np.int16)).mean() < 4


def test_an_empty_batch_has_no_rows() -> None:
    assert prepare_batch([], **SIZES).shape == (0, 64, 64, 3)


def test_the_exif_orientation_of_a_photo_is_applied() -> None:
    # A phone photo stored sideways, with orientation 6: "rotate 90 degrees clockwise to view".
    upright = Image.open(io.BytesIO(_jpeg(4, size=(90, 120)))).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif.tobytes())
    sideways = buffer.getvalue()

    expected = prepare_image(np.asarray(upright), **SIZES)
    np.testing.assert_array_equal(prepare_image(sideways, **SIZES), expected)
    assert not np.array_equal(prepare_image(np.asarray(stored), **SIZES), expected)


def test_shades_of_grey_evens_out_the_colour_of_the_light() -> None:
    rng = np.random.default_rng(4)
    scene = rng.integers(60, 200, (32, 32, 3)).astype(np.float64)
    # The same scene under a neutral light and under a reddish one.
    neutral = np.clip(scene, 0, 255).astype(np.uint8)
    reddish = np.clip(scene * (1.3, 0.95, 0.75), 0, 255).astype(np.uint8)
    corrected = [shades_of_grey(image).astype(np.float64) for image in (neutral, reddish)]
    means = [image.reshape(-1, 3).mean(axis=0) for image in corrected]
    # After correction both have about equal channel means, and about each other's pixels.
    for channel_means in means:
        assert np.ptp(channel_means) < 0.1 * channel_means.mean()
    assert np.abs(corrected[0] - corrected[1]).mean() < 4.0
    assert np.abs(reddish.astype(np.float64) - neutral).mean() > 15.0


def test_preprocessing_is_one_definition_with_its_colour_handling() -> None:
    data = _jpeg(3)
    plain = Preprocessing(input_size=64, effective_resolution=48)
    corrected = Preprocessing(64, 48, colour_constancy="shades_of_grey")
    np.testing.assert_array_equal(plain.image(data), prepare_image(data, **SIZES))
    np.testing.assert_array_equal(corrected.batch([data])[0], shades_of_grey(plain.image(data)))
    assert plain.at_size(96).image(data).shape == (96, 96, 3)
    with pytest.raises(ValueError, match="colour_constancy must be one of"):
        Preprocessing(64, 48, colour_constancy="sepia")


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits_not_stretched() -> None:
    # Uploads are stored through the same conversion, so the model sees what the page shows.
    pixels = np.full((16, 16), 40_000, dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    image = open_image(buffer.getvalue())
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (156, 156, 156)  # 40000 / 256, not the image's own peak
