"""Check uploaded images and re-encode them so that nothing but pixels is stored.

An upload is accepted by what its bytes are, never by its name or Content-Type: the leading
signature must be one of the allow-listed formats, and Pillow then decodes it with only that
format's decoder. Size and pixel limits are checked before any pixel is decoded, so a small
file that expands to gigabytes (a decompression bomb) is refused cheaply.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import IO

import PIL.Image
import PIL.ImageFile
import PIL.ImageOps
from django.conf import settings
from django.core.exceptions import ValidationError

from inference.preprocessing import to_rgb

# (signature test, Pillow format). WebP is RIFF....WEBP; every other format is refused, SVG
# and HTML included, whatever the file is called.
ACCEPTED_FORMATS = "JPEG, PNG or WebP"

# A file cut short must be refused, never padded with grey and stored as if whole.
PIL.ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class SanitizedImage:
    content: bytes
    width: int
    height: int
    format: str
    extension: str
    sha256: str
    # A small JPEG of the same pixels (see image_thumbnail).
    thumbnail: bytes


def image_format_sniff(*, data: bytes) -> str | None:
    """Return the Pillow format named by the file's leading signature, or None if not allowed."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _invalid(message: str, code: str) -> ValidationError:
    return ValidationError(message, code=code)


def image_sanitize(*, data: bytes) -> SanitizedImage:
    """Check an upload against the allow-list and limits, and re-encode it without metadata.

    Re-encoding (rather than deleting EXIF tags) drops every metadata block, GPS and comments
    included, and anything appended to or hidden inside the file, whatever container it came
    in. Every accepted image is stored as 8-bit RGB: CMYK, 16-bit, greyscale, palette and alpha
    images are converted, so the stored file is what the model and the browser both read.
    """
    if not data:
        raise _invalid("The file is empty.", "empty_file")
    max_bytes = settings.UPLOAD_MAX_IMAGE_BYTES
    if len(data) > max_bytes:
        raise _invalid(
            f"The file is larger than the {max_bytes // (1024 * 1024)} MB limit.", "file_too_large"
        )
    source_format = image_format_sniff(data=data)
    if source_format is None:
        raise _invalid(
            f"The file is not an accepted image format ({ACCEPTED_FORMATS}).", "unsupported_format"
        )

    max_pixels = settings.UPLOAD_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns past its own pixel count; the limit that decides is the setting.
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            probe = PIL.Image.open(io.BytesIO(data), formats=(source_format,))
        with probe:
            # The header alone gives the size: refuse a bomb before decoding a single pixel.
            width, height = probe.size
            if width * height > max_pixels:
                raise _invalid(
                    f"The image is {width} x {height} pixels, more than the "
                    f"{max_pixels / 1_000_000:g} megapixel limit.",
                    "too_many_pixels",
                )
            if getattr(probe, "n_frames", 1) > 1:
                raise _invalid(
                    "Animated images are not accepted; upload a single still image.", "animated"
                )
            probe.verify()
        with PIL.Image.open(io.BytesIO(data), formats=(source_format,)) as opened:
            icc_profile = opened.info.get("icc_profile")
            oriented = PIL.ImageOps.exif_transpose(opened)
            oriented.load()
            pixels = _pixels_only(oriented)
    except ValidationError:
        raise
    except PIL.Image.DecompressionBombError as exc:
        # Pillow's own guard fires first for sizes far beyond ours; the answer is the same.
        raise _invalid(
            f"The image has more pixels than the {max_pixels / 1_000_000:g} megapixel limit.",
            "too_many_pixels",
        ) from exc
    except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _invalid(
            f"The file is damaged or incomplete and cannot be read as a {source_format} image.",
            "unreadable_image",
        ) from exc

    if source_format == "JPEG":
        output_format, extension = "JPEG", ".jpg"
        save_options: dict[str, object] = {"quality": 95, "subsampling": 0}
    else:
        output_format, extension = "PNG", ".png"
        save_options = {"optimize": False}
    # Colour profiles say how to display the pixels and identify no one, so RGB ones are kept;
    # a CMYK profile would misdescribe the converted pixels.
    if icc_profile and oriented.mode not in ("CMYK", "I;16", "I"):
        save_options["icc_profile"] = icc_profile

    buffer = io.BytesIO()
    pixels.save(buffer, format=output_format, **save_options)
    content = buffer.getvalue()
    return SanitizedImage(
        content=content,
        width=pixels.width,
        height=pixels.height,
        format=output_format,
        extension=extension,
        sha256=hashlib.sha256(content).hexdigest(),
        thumbnail=_thumbnail_encode(pixels),
    )


def image_header_pixels(*, file: IO[bytes]) -> int:
    """Width x height from an image's header alone, without decoding it; 0 if unreadable.

    An unreadable or refused file counts nothing here: image_sanitize refuses it, saying why.
    The file is left at its start.
    """
    try:
        source_format = image_format_sniff(data=file.read(12))
        file.seek(0)
        if source_format is None:
            return 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(file, formats=(source_format,)) as probe:
                width, height = probe.size
    except (
        PIL.UnidentifiedImageError,
        PIL.Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
    ):
        return 0
    finally:
        file.seek(0)
    return width * height


def image_shape_check(*, width: int, height: int) -> None:
    """Refuse an image too small, or too long and thin, to show a lesion that could be scored.

    Separate from image_sanitize, which decides whether a file is a safe, readable image:
    this decides whether the image is worth scoring.
    """
    min_side = settings.UPLOAD_MIN_IMAGE_SIDE
    if min(width, height) < min_side:
        raise _invalid(
            f"The image is {width} x {height} pixels; images must be at least {min_side} "
            "pixels on their shorter side.",
            "image_too_small",
        )
    max_ratio = settings.UPLOAD_MAX_ASPECT_RATIO
    if max(width, height) > max_ratio * min(width, height):
        raise _invalid(
            f"The image is {width} x {height} pixels; its longer side may be at most "
            f"{max_ratio} times its shorter side.",
            "aspect_ratio_too_large",
        )


def _pixels_only(image: PIL.Image.Image) -> PIL.Image.Image:
    """A fresh 8-bit RGB copy of the pixels, with none of the source's info blocks."""
    rgb = to_rgb(image)
    fresh = PIL.Image.new("RGB", rgb.size)
    fresh.paste(rgb)
    return fresh


# The longer side of a thumbnail: sharp in a grid cell or a picker strip on a high-density
# screen, and a small fraction of a dermoscopy image's bytes.
THUMBNAIL_SIDE = 320


def image_thumbnail(*, data: bytes) -> bytes:
    """A small JPEG of a stored image (already sanitized), its aspect ratio kept.

    An image no larger than a thumbnail is re-encoded at its own size, never enlarged.
    """
    with PIL.Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as opened:
        # A JPEG decodes straight to a reduced scale: far less work than the full image.
        opened.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        opened.load()
        return _thumbnail_encode(to_rgb(opened))


def _thumbnail_encode(pixels: PIL.Image.Image) -> bytes:
    scale = min(1.0, THUMBNAIL_SIDE / max(pixels.size))
    size = (max(1, round(pixels.width * scale)), max(1, round(pixels.height * scale)))
    # reducing_gap shrinks by whole factors first, so a large image resizes quickly.
    small = pixels.resize(size, PIL.Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=82, optimize=True)
    return buffer.getvalue()
