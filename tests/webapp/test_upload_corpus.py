"""A corpus of bad and awkward uploads, each made here, sent through the API and the browser.

Every bad file must get a 400 with a message that says what is wrong, and leave nothing
behind: no stored file, no image, prediction or audit row. Awkward but genuine images (CMYK,
16-bit, greyscale, alpha, palette, polyglots carrying a payload) must be converted cleanly.
"""

from __future__ import annotations

import html
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import PIL.Image
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.webapp.conftest import api_client, login
from tests.webapp.factories import CaseFactory, jpeg_bytes
from webapp.audit.models import AuditEvent
from webapp.cases.models import Image
from webapp.scoring.models import Prediction

pytestmark = pytest.mark.django_db

SIZE_LIMIT_MB = 1


def encode(image: PIL.Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def picture(mode: str = "RGB", size: tuple[int, int] = (48, 32)) -> PIL.Image.Image:
    image = PIL.Image.new("RGB", size, (170, 100, 70))
    image.paste((90, 40, 30), (10, 8, 30, 24))
    return image.convert(mode)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_claiming(width: int, height: int, *, bad_crc: bool = False) -> bytes:
    """A PNG whose header claims a size; its pixel data is a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = png_chunk(b"IHDR", ihdr)
    if bad_crc:
        chunk = chunk[:-4] + b"\x00\x00\x00\x00"
    idat = png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat + png_chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header is rewritten to claim another size."""
    data = bytearray(jpeg_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def animated(image_format: str) -> bytes:
    frames = [picture(), picture().rotate(90)]
    return encode(frames[0], image_format, save_all=True, append_images=frames[1:], duration=100)


def png() -> bytes:
    return encode(picture(), "PNG")


def corrupt_png() -> bytes:
    data = bytearray(png())
    start = data.index(b"IDAT") + 4
    for offset in range(start, start + 12):
        data[offset] ^= 0xFF
    return bytes(data)


def corrupt_jpeg() -> bytes:
    data = bytearray(jpeg_bytes(size=(64, 64)))
    start = data.index(b"\xff\xda") + 20
    data[start:] = b"\x00" * (len(data) - start)
    return bytes(data)


def bilevel_bomb() -> bytes:
    """A real 9000x9000 picture (81 megapixels) that compresses to a few kilobytes."""
    return encode(PIL.Image.new("1", (9000, 9000)), "PNG")


def oversized_file() -> bytes:
    # A valid JPEG padded past the size limit with trailing bytes.
    return jpeg_bytes() + b"\x00" * (SIZE_LIMIT_MB * 1024 * 1024 + 1)


NOT_ACCEPTED = "not an accepted image format"
DAMAGED = "damaged or incomplete"


@dataclass(frozen=True)
class BadFile:
    id: str
    name: str
    content_type: str
    make: Callable[[], bytes]
    message: str


BAD_FILES = [
    BadFile("zero-byte", "empty.jpg", "image/jpeg", lambda: b"", "The file is empty"),
    BadFile("truncated-jpeg", "cut.jpg", "image/jpeg", lambda: jpeg_bytes()[:300], DAMAGED),
    BadFile("truncated-png", "cut.png", "image/png", lambda: png()[:60], DAMAGED),
    BadFile("jpeg-header-only", "h.jpg", "image/jpeg", lambda: jpeg_bytes()[:20], DAMAGED),
    BadFile("jpeg-soi-eoi", "e.jpg", "image/jpeg", lambda: b"\xff\xd8\xff\xd9", DAMAGED),
    BadFile("png-signature-only", "s.png", "image/png", lambda: b"\x89PNG\r\n\x1a\n", DAMAGED),
    BadFile("corrupt-jpeg", "c.jpg", "image/jpeg", corrupt_jpeg, DAMAGED),
    BadFile("corrupt-png-data", "c.png", "image/png", corrupt_png, DAMAGED),
    BadFile(
        "png-bad-header-crc", "crc.png", "image/png", lambda: png_claiming(8, 8, bad_crc=True),
        DAMAGED,
    ),
    BadFile("png-zero-size", "zero.png", "image/png", lambda: png_claiming(0, 0), DAMAGED),
    BadFile(
        "webp-header-garbage", "g.webp", "image/webp", lambda: b"RIFF\x10\x00\x00\x00WEBPVP8 " +
        b"\x00" * 20, DAMAGED,
    ),
    BadFile(
        "jpeg-signature-then-html", "p.jpg", "image/jpeg",
        lambda: b"\xff\xd8\xff<html><script>alert(1)</script></html>", DAMAGED,
    ),
    BadFile("plain-text", "notes.jpg", "image/jpeg", lambda: b"just some text\n", NOT_ACCEPTED),
    BadFile(
        "html", "page.png", "image/png",
        lambda: b"<!doctype html><html><body><script>alert(1)</script></body></html>",
        NOT_ACCEPTED,
    ),
    BadFile(
        "svg", "lesion.svg", "image/svg+xml",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>',
        NOT_ACCEPTED,
    ),
    BadFile(
        "svg-with-xml-declaration", "lesion.jpg", "image/jpeg",
        lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', NOT_ACCEPTED,
    ),
    BadFile("pdf", "scan.jpg", "image/jpeg", lambda: b"%PDF-1.7\n1 0 obj<<>>\n", NOT_ACCEPTED),
    BadFile("zip", "a.png", "image/png", lambda: b"PK\x03\x04" + b"\x00" * 40, NOT_ACCEPTED),
    BadFile("gzip", "a.jpg", "image/jpeg", lambda: b"\x1f\x8b\x08\x00" + b"\x00" * 9, NOT_ACCEPTED),
    BadFile("elf-executable", "a.jpg", "image/jpeg", lambda: b"\x7fELF\x02\x01\x01" + b"\x00" * 60,
            NOT_ACCEPTED),
    BadFile("json", "a.jpg", "application/json", lambda: b'{"image": "lesion"}', NOT_ACCEPTED),
    BadFile(
        "data-uri-text", "a.jpg", "image/jpeg", lambda: b"data:image/jpeg;base64,/9j/4AAQSkZJRg==",
        NOT_ACCEPTED,
    ),
    BadFile("gif", "a.gif", "image/gif", lambda: encode(picture("P"), "GIF"), NOT_ACCEPTED),
    BadFile("animated-gif", "a.gif", "image/gif", lambda: animated("GIF"), NOT_ACCEPTED),
    BadFile("bmp", "a.bmp", "image/bmp", lambda: encode(picture(), "BMP"), NOT_ACCEPTED),
    BadFile("bmp-named-png", "a.png", "image/png", lambda: encode(picture(), "BMP"), NOT_ACCEPTED),
    BadFile("tiff", "a.tiff", "image/tiff", lambda: encode(picture(), "TIFF"), NOT_ACCEPTED),
    BadFile("ico", "a.ico", "image/x-icon", lambda: encode(picture(), "ICO"), NOT_ACCEPTED),
    BadFile(
        "wave-riff", "a.webp", "image/webp", lambda: b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 20,
        NOT_ACCEPTED,
    ),
    BadFile(
        "jpeg2000", "a.jp2", "image/jp2", lambda: b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 20,
        NOT_ACCEPTED,
    ),
    BadFile("psd", "a.psd", "image/jpeg", lambda: b"8BPS\x00\x01" + b"\x00" * 40, NOT_ACCEPTED),
    BadFile("animated-png", "a.png", "image/png", lambda: animated("PNG"), "Animated images"),
    BadFile("animated-webp", "a.webp", "image/webp", lambda: animated("WEBP"), "Animated images"),
    BadFile(
        "huge-dimension-png-header", "big.png", "image/png", lambda: png_claiming(100_000, 100_000),
        "megapixel limit",
    ),
    BadFile(
        "huge-dimension-jpeg-header", "big.jpg", "image/jpeg", lambda: jpeg_claiming(60000, 60000),
        "megapixel limit",
    ),
    BadFile("decompression-bomb", "bomb.png", "image/png", bilevel_bomb, "megapixel limit"),
    BadFile("over-size-limit", "large.jpg", "image/jpeg", oversized_file, "MB limit"),
]  # fmt: skip


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.UPLOAD_MAX_IMAGE_BYTES = SIZE_LIMIT_MB * 1024 * 1024


def assert_nothing_stored(media_root) -> None:
    assert not Image.objects.exists()
    assert not Prediction.objects.exists()
    assert not AuditEvent.objects.filter(action="image.uploaded").exists()
    assert [path for path in media_root.rglob("*") if path.is_file()] == []


def test_the_corpus_has_at_least_thirty_bad_files():
    assert len(BAD_FILES) >= 30
    assert len({bad.id for bad in BAD_FILES}) == len(BAD_FILES)


@pytest.mark.parametrize("bad", BAD_FILES, ids=[bad.id for bad in BAD_FILES])
def test_the_api_refuses_a_bad_file_with_a_message_and_stores_nothing(bad, clinician, media_root):
    case = CaseFactory.create(created_by=clinician)
    upload = SimpleUploadedFile(bad.name, bad.make(), bad.content_type)
    response = api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"images": [upload]}, format="multipart"
    )
    assert response.status_code == 400, response.content[:500]
    error = response.json()["error"]
    [message] = error["details"]["images"]
    assert bad.message in message
    assert message.startswith(f"{bad.name}: ")
    assert_nothing_stored(media_root)


@pytest.mark.parametrize("bad", BAD_FILES, ids=[bad.id for bad in BAD_FILES])
def test_the_browser_refuses_a_bad_file_with_a_message_and_stores_nothing(
    bad, clinician, media_root
):
    case = CaseFactory.create(created_by=clinician)
    upload = SimpleUploadedFile(bad.name, bad.make(), bad.content_type)
    response = login(clinician).post(reverse("cases:upload", args=[case.pk]), {"images": [upload]})
    assert response.status_code == 400
    assert bad.message in html.unescape(response.text)
    assert_nothing_stored(media_root)


TOO_SMALL = "at least 24 pixels on their shorter side"
TOO_LONG = "at most 10 times its shorter side"

# Readable images with nothing in them to score: refused whatever the model would say.
DEGENERATE = [
    BadFile(
        "1x1-png", "dot.png", "image/png", lambda: encode(picture(size=(1, 1)), "PNG"), TOO_SMALL
    ),
    BadFile(
        "100000x1-png",
        "line.png",
        "image/png",
        lambda: encode(picture("L", size=(100_000, 1)), "PNG"),
        TOO_SMALL,
    ),
    BadFile("23px-jpeg", "thin.jpg", "image/jpeg", lambda: jpeg_bytes(size=(200, 23)), TOO_SMALL),
    BadFile(
        "11-to-1-jpeg", "strip.jpg", "image/jpeg", lambda: jpeg_bytes(size=(352, 32)), TOO_LONG
    ),
    BadFile(
        "1-to-11-png",
        "tall.png",
        "image/png",
        lambda: encode(picture(size=(40, 500)), "PNG"),
        TOO_LONG,
    ),
]


@pytest.mark.parametrize("bad", DEGENERATE, ids=[bad.id for bad in DEGENERATE])
def test_the_api_refuses_an_image_too_small_or_too_long_to_score(bad, clinician, media_root):
    case = CaseFactory.create(created_by=clinician)
    upload = SimpleUploadedFile(bad.name, bad.make(), bad.content_type)
    response = api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"images": [upload]}, format="multipart"
    )
    assert response.status_code == 400, response.content[:500]
    [message] = response.json()["error"]["details"]["images"]
    assert message.startswith(f"{bad.name}: The image is ")
    assert bad.message in message
    assert_nothing_stored(media_root)


@pytest.mark.parametrize("bad", DEGENERATE, ids=[bad.id for bad in DEGENERATE])
def test_the_browser_refuses_an_image_too_small_or_too_long_to_score(bad, clinician, media_root):
    case = CaseFactory.create(created_by=clinician)
    upload = SimpleUploadedFile(bad.name, bad.make(), bad.content_type)
    response = login(clinician).post(reverse("cases:upload", args=[case.pk]), {"images": [upload]})
    assert response.status_code == 400
    assert bad.message in html.unescape(response.text)
    assert_nothing_stored(media_root)


@pytest.mark.parametrize("size", [(24, 24), (240, 24), (24, 240)])
def test_an_image_at_the_shape_limits_is_accepted(size, clinician):
    case = CaseFactory.create(created_by=clinician)
    upload = SimpleUploadedFile("edge.jpg", jpeg_bytes(size=size), "image/jpeg")
    response = api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"files": [upload]}, format="multipart"
    )
    assert response.status_code == 201, response.content[:500]


def test_the_shape_limits_come_from_the_settings(clinician, settings):
    settings.UPLOAD_MIN_IMAGE_SIDE = 100
    settings.UPLOAD_MAX_ASPECT_RATIO = 2
    case = CaseFactory.create(created_by=clinician)
    client = api_client(clinician)
    url = reverse("api:case-images", args=[case.pk])
    small = client.post(
        url,
        {"files": [SimpleUploadedFile("a.jpg", jpeg_bytes(size=(99, 150)))]},
        format="multipart",
    )
    assert "at least 100 pixels" in str(small.json()["error"]["details"])
    long = client.post(
        url,
        {"files": [SimpleUploadedFile("b.jpg", jpeg_bytes(size=(100, 201)))]},
        format="multipart",
    )
    assert "at most 2 times" in str(long.json()["error"]["details"])


def test_one_bad_file_refuses_the_whole_upload(clinician, media_root):
    case = CaseFactory.create(created_by=clinician)
    files = [
        SimpleUploadedFile("good.jpg", jpeg_bytes(), "image/jpeg"),
        SimpleUploadedFile("bad.jpg", b"<html>", "image/jpeg"),
    ]
    response = api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"files": files}, format="multipart"
    )
    assert response.status_code == 400
    assert_nothing_stored(media_root)


def cmyk_jpeg() -> bytes:
    return encode(picture("CMYK"), "JPEG")


def sixteen_bit_png() -> bytes:
    import numpy as np

    pixels = np.zeros((30, 40), dtype=np.uint16)
    pixels[:, :20] = 40_000
    image = PIL.Image.fromarray(pixels)
    assert image.mode == "I;16"
    return encode(image, "PNG")


def jpeg_with_payload() -> bytes:
    exif = PIL.Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)
    return encode(picture(), "JPEG", exif=exif, comment=b"<script>alert(1)</script>")


def png_with_payload() -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    return encode(picture(), "PNG", pnginfo=info) + b"<html><script>alert(1)</script></html>"


@dataclass(frozen=True)
class AwkwardImage:
    id: str
    name: str
    content_type: str
    make: Callable[[], bytes]
    stored_format: str


AWKWARD_IMAGES = [
    AwkwardImage("cmyk-jpeg", "cmyk.jpg", "image/jpeg", cmyk_jpeg, "JPEG"),
    AwkwardImage("greyscale-jpeg", "grey.jpg", "image/jpeg", lambda: encode(picture("L"), "JPEG"),
                 "JPEG"),
    AwkwardImage("greyscale-png", "grey.png", "image/png", lambda: encode(picture("L"), "PNG"),
                 "PNG"),
    AwkwardImage("sixteen-bit-png", "deep.png", "image/png", sixteen_bit_png, "PNG"),
    AwkwardImage("rgba-png", "alpha.png", "image/png", lambda: encode(picture("RGBA"), "PNG"),
                 "PNG"),
    AwkwardImage("greyscale-alpha-png", "la.png", "image/png", lambda: encode(picture("LA"), "PNG"),
                 "PNG"),
    AwkwardImage("palette-png", "p.png", "image/png",
                 lambda: encode(picture("P"), "PNG", transparency=0), "PNG"),
    AwkwardImage("webp", "w.webp", "image/webp", lambda: encode(picture(), "WEBP"), "PNG"),
    AwkwardImage("png-named-gif-sent-as-html", "a.gif", "text/html", png, "PNG"),
    AwkwardImage("jpeg-polyglot-with-metadata", "j.jpg", "image/jpeg", jpeg_with_payload, "JPEG"),
    AwkwardImage("png-polyglot-with-trailer", "p.png", "image/png", png_with_payload, "PNG"),
]  # fmt: skip


@pytest.mark.parametrize("awkward", AWKWARD_IMAGES, ids=[a.id for a in AWKWARD_IMAGES])
def test_an_awkward_image_is_converted_cleanly(awkward, clinician):
    case = CaseFactory.create(created_by=clinician)
    upload = SimpleUploadedFile(awkward.name, awkward.make(), awkward.content_type)
    response = api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"files": [upload]}, format="multipart"
    )
    assert response.status_code == 201, response.content[:500]
    image = Image.objects.get(case=case)
    assert image.format == awkward.stored_format
    # Server-made name: a random hex stem, the extension of what was stored.
    assert image.file.name
    stem, extension = image.file.name.rsplit("/", 1)[-1].rsplit(".", 1)
    assert len(stem) == 32
    assert extension == ("jpg" if awkward.stored_format == "JPEG" else "png")
    content = image.file.read()
    assert b"<script>" not in content
    assert b"CameraMaker" not in content
    with PIL.Image.open(io.BytesIO(content)) as stored:
        assert stored.mode == "RGB"
        assert stored.size == (image.width, image.height)
        assert "comment" not in stored.info
        assert dict(stored.getexif()) == {}


def test_sixteen_bit_pixels_are_scaled_not_clipped(clinician):
    from webapp.cases.imaging import image_sanitize

    result = image_sanitize(data=sixteen_bit_png())
    with PIL.Image.open(io.BytesIO(result.content)) as stored:
        bright = stored.getpixel((5, 5))
        dark = stored.getpixel((35, 5))
    assert bright == (156, 156, 156)  # 40000 / 256
    assert dark == (0, 0, 0)
