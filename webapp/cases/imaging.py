"""Re-encode uploaded images so that nothing but pixels is stored."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import PIL.Image
import PIL.ImageOps
from django.core.exceptions import ValidationError

# Formats Pillow may read from an upload. JPEG stays JPEG (re-encoded at high quality, since
# the model was trained on JPEGs); everything else is stored losslessly as PNG.
READABLE_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP")


@dataclass(frozen=True)
class SanitizedImage:
    content: bytes
    width: int
    height: int
    format: str
    extension: str
    sha256: str


def image_sanitize(*, data: bytes) -> SanitizedImage:
    """Decode an upload, apply its EXIF orientation and re-encode it without metadata.

    Re-encoding (rather than deleting EXIF tags) drops every metadata block, GPS included,
    whatever container it came in.
    """
    try:
        with PIL.Image.open(io.BytesIO(data), formats=READABLE_FORMATS) as probe:
            probe.verify()
        with PIL.Image.open(io.BytesIO(data), formats=READABLE_FORMATS) as opened:
            source_format = opened.format or ""
            icc_profile = opened.info.get("icc_profile")
            oriented = PIL.ImageOps.exif_transpose(opened)
            oriented.load()
    except PIL.Image.DecompressionBombError as exc:
        raise ValidationError("The image has too many pixels.", code="too_large") from exc
    except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationError(
            "The file is not a readable image (JPEG, PNG, WebP, TIFF or BMP).",
            code="unreadable_image",
        ) from exc

    if source_format == "JPEG":
        pixels = oriented if oriented.mode in ("RGB", "L") else oriented.convert("RGB")
        output_format, extension = "JPEG", ".jpg"
        save_options: dict[str, object] = {"quality": 95, "subsampling": 0}
    else:
        allowed_modes = ("RGB", "RGBA", "L", "LA")
        pixels = oriented if oriented.mode in allowed_modes else oriented.convert("RGBA")
        output_format, extension = "PNG", ".png"
        save_options = {"optimize": False}
    # Colour profiles say how to display the pixels and identify no one, so they are kept.
    if icc_profile:
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
    )
