"""Turn an uploaded image into the pixel array a model takes.

Training and serving both call `prepare_image`, so the two can never disagree on decoding,
orientation, colour mode or resizing.

The training images come from sources at different resolutions. A model can learn to tell the
source (whose malignant share differs) from the fine texture that only the sharper images have.
Every image is therefore first brought down to one *effective resolution* (stored in the
artifact's metadata) and only then resized to the model's input size, so the amount of detail
no longer says where an image came from.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = bytes | str | os.PathLike[str] | np.ndarray

from inference.errors import ImageDecodeError  # noqa: E402
from inference.threads import available_cores, process_thread_pool  # noqa: E402

# Decompression bombs are refused here as well as at upload time: PIL warns at this pixel count
# and we make that an error.
Image.MAX_IMAGE_PIXELS = 50_000_000


def open_image(source: ImageSource, *, draft_size: int | None = None) -> Image.Image:
    """Decode `source` into an RGB PIL image with its EXIF orientation applied."""
    if isinstance(source, np.ndarray):
        return _array_to_image(source)
    try:
        opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source))
        if draft_size is not None and opened.format == "JPEG":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the image is at least twice what
            # we keep: most of the decode cost saved, and the detail dropped is detail the
            # effective-resolution step would drop anyway.
            opened.draft("RGB", (draft_size, draft_size))
        opened.load()
        # In place: without an orientation tag a copying transpose would copy the whole image.
        ImageOps.exif_transpose(opened, in_place=True)
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"no such file: {source!s}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"not a readable image: {exc}") from exc
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image has too many pixels: {exc}") from exc
    return to_rgb(opened)


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB: the one conversion uploads and model input both go through.

    16-bit greyscale is scaled to 8 bits (value / 256) rather than clipped, and transparent
    areas become white, as a browser shows them. An RGB image is returned as it is.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ImageDecodeError(f"expected an HxWx3 or HxWx4 array, got shape {array.shape}")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(array.max()) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    return to_rgb(Image.fromarray(array))


def resize_for_model(
    image: Image.Image, *, input_size: int, effective_resolution: int
) -> np.ndarray:
    """Squash to a square at the effective resolution, then resize to the input size."""
    if image.width > effective_resolution or image.height > effective_resolution:
        image = image.resize(
            (effective_resolution, effective_resolution), Image.Resampling.LANCZOS, reducing_gap=3.0
        )
    if image.size != (input_size, input_size):
        image = image.resize((input_size, input_size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


COLOUR_CONSTANCY = ("none", "shades_of_grey")
# Minkowski norm of the shades-of-grey illuminant estimate (Finlayson and Trezzi 2004; p = 6 as
# in the ISIC 2018 and 2019 winning entries).
SHADES_OF_GREY_POWER = 6.0


def shades_of_grey(pixels: np.ndarray) -> np.ndarray:
    """Divide out the light's colour, estimated as each channel's Minkowski p-mean, so that the
    same lesion under another dermatoscope's light gives about the same pixels."""
    values = pixels.astype(np.float32)
    illuminant = np.power(
        np.mean(np.power(values, SHADES_OF_GREY_POWER), axis=(0, 1)), 1 / SHADES_OF_GREY_POWER
    )
    norm = float(np.linalg.norm(illuminant))
    if norm == 0.0:
        return pixels  # a black image has no light to correct
    gains = norm / (np.maximum(illuminant, 1e-6) * np.sqrt(3.0))
    return np.clip(values * gains, 0, 255).astype(np.uint8)


def prepare_image(
    source: ImageSource,
    *,
    input_size: int,
    effective_resolution: int,
    colour_constancy: str = "none",
) -> np.ndarray:
    """Decode and resize one image to an (input_size, input_size, 3) uint8 array."""
    image = open_image(source, draft_size=effective_resolution)
    pixels = resize_for_model(
        image, input_size=input_size, effective_resolution=effective_resolution
    )
    if colour_constancy == "shades_of_grey":
        return shades_of_grey(pixels)
    if colour_constancy != "none":
        raise ValueError(f"colour_constancy must be one of {COLOUR_CONSTANCY}")
    return pixels


def prepare_batch(
    sources: Sequence[ImageSource],
    *,
    input_size: int,
    effective_resolution: int,
    colour_constancy: str = "none",
) -> np.ndarray:
    """Decode and resize a batch into one (N, input_size, input_size, 3) uint8 array.

    Images are decoded on all the cores this process may use: Pillow releases the GIL while
    it decodes and resizes, so a batch's decoding takes a fraction of its serial time. The
    first image that fails, in the given order, raises as it would alone.
    """
    batch = np.empty((len(sources), input_size, input_size, 3), dtype=np.uint8)

    def fill(index: int) -> None:
        batch[index] = prepare_image(
            sources[index],
            input_size=input_size,
            effective_resolution=effective_resolution,
            colour_constancy=colour_constancy,
        )

    if len(sources) < 2 or available_cores() < 2:
        for index in range(len(sources)):
            fill(index)
    else:
        # Consuming the results in order re-raises the first failure.
        for _ in _decode_pool().map(fill, range(len(sources))):
            pass
    return batch


def _decode_pool() -> ThreadPoolExecutor:
    return process_thread_pool("image-decode", available_cores())


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes model input: the one definition that training writes into the
    artifact's metadata and inference reads back, so the two cannot drift apart."""

    input_size: int
    effective_resolution: int
    colour_constancy: str = "none"

    def __post_init__(self) -> None:
        if self.colour_constancy not in COLOUR_CONSTANCY:
            raise ValueError(
                f"colour_constancy must be one of {', '.join(COLOUR_CONSTANCY)}, "
                f"not {self.colour_constancy!r}"
            )

    def image(self, source: ImageSource) -> np.ndarray:
        """One image as an (input_size, input_size, 3) uint8 array."""
        return prepare_image(
            source,
            input_size=self.input_size,
            effective_resolution=self.effective_resolution,
            colour_constancy=self.colour_constancy,
        )

    def batch(self, sources: Sequence[ImageSource]) -> np.ndarray:
        """Images as one (N, input_size, input_size, 3) uint8 array, decoded in parallel."""
        return prepare_batch(
            sources,
            input_size=self.input_size,
            effective_resolution=self.effective_resolution,
            colour_constancy=self.colour_constancy,
        )

    def at_size(self, input_size: int) -> Preprocessing:
        return replace(self, input_size=input_size)


def flip_views(pixels: np.ndarray) -> list[np.ndarray]:
    """The test-time augmentation views of a (N, H, W, 3) batch: as is, mirrored left-right,
    upside down, and both. Scores are the mean of the model's logits over them."""
    return [pixels, pixels[:, :, ::-1], pixels[:, ::-1, :], pixels[:, ::-1, ::-1]]
