import io

import PIL.Image
import pytest
from django.core.exceptions import ValidationError

from webapp.cases.imaging import image_sanitize

ORIENTATION = 0x0112
GPS_IFD = 0x8825


def exif_jpeg(*, orientation: int) -> bytes:
    """A 40x20 JPEG whose EXIF says to rotate it, with a GPS position attached."""
    image = PIL.Image.new("RGB", (40, 20), (200, 120, 80))
    exif = PIL.Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "CameraMaker"
    exif.get_ifd(GPS_IFD)[2] = (51.0, 30.0, 0.0)  # GPSLatitude
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def test_it_applies_the_exif_orientation():
    # Orientation 6 means "rotate 90 degrees clockwise to display".
    result = image_sanitize(data=exif_jpeg(orientation=6))
    assert (result.width, result.height) == (20, 40)


def test_it_strips_exif_and_gps_metadata():
    result = image_sanitize(data=exif_jpeg(orientation=1))
    with PIL.Image.open(io.BytesIO(result.content)) as stored:
        assert dict(stored.getexif()) == {}
        assert "exif" not in stored.info
    assert b"CameraMaker" not in result.content


def test_it_keeps_jpegs_as_jpegs_and_stores_other_formats_as_png():
    assert image_sanitize(data=exif_jpeg(orientation=1)).format == "JPEG"
    buffer = io.BytesIO()
    PIL.Image.new("RGBA", (8, 8)).save(buffer, format="WEBP")
    result = image_sanitize(data=buffer.getvalue())
    assert (result.format, result.extension) == ("PNG", ".png")


def test_it_hashes_the_stored_bytes():
    import hashlib

    result = image_sanitize(data=exif_jpeg(orientation=1))
    assert result.sha256 == hashlib.sha256(result.content).hexdigest()


def test_it_rejects_a_file_that_is_not_an_image():
    with pytest.raises(ValidationError, match="not an accepted image format"):
        image_sanitize(data=b"%PDF-1.4 definitely not an image")
