"""One upload request may hold only so many pixels, judged from the headers before decoding."""

from __future__ import annotations

import io

import PIL.Image
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.webapp.conftest import api_client, login
from tests.webapp.factories import CaseFactory, jpeg_bytes
from webapp.cases import services
from webapp.cases.models import Image

pytestmark = pytest.mark.django_db


def large_png() -> bytes:
    """A 49-megapixel PNG that is small on disk (one bit a pixel, all black)."""
    buffer = io.BytesIO()
    PIL.Image.new("1", (7000, 7000)).save(buffer, format="PNG")
    return buffer.getvalue()


def no_decoding(monkeypatch) -> None:
    def refuse(**kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(services, "image_sanitize", refuse)


def test_forty_images_of_49_megapixels_are_refused_before_any_is_decoded(clinician, monkeypatch):
    no_decoding(monkeypatch)
    case = CaseFactory.create(created_by=clinician)
    data = large_png()
    files = [SimpleUploadedFile(f"{n}.png", data, "image/png") for n in range(40)]
    response = api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"images": files}, format="multipart"
    )
    assert response.status_code == 400
    message = " ".join(response.json()["error"]["details"]["images"])
    assert "1960.0 megapixels together" in message
    assert "200 megapixels one upload may hold" in message
    assert not Image.objects.exists()


def test_the_budget_is_a_setting_and_counts_every_image_of_the_request(settings, clinician):
    settings.UPLOAD_MAX_REQUEST_PIXELS = 64 * 48 * 2
    case = CaseFactory.create(created_by=clinician)
    url = reverse("api:case-images", args=[case.pk])
    two = [SimpleUploadedFile(f"{n}.jpg", jpeg_bytes(), "image/jpeg") for n in range(2)]
    assert api_client(clinician).post(url, {"images": two}, format="multipart").status_code == 201
    three = [SimpleUploadedFile(f"{n}.jpg", jpeg_bytes(), "image/jpeg") for n in range(3)]
    refused = api_client(clinician).post(url, {"images": three}, format="multipart")
    assert refused.status_code == 400
    assert Image.objects.count() == 2


def test_a_browser_upload_over_the_budget_says_so(settings, clinician):
    settings.UPLOAD_MAX_REQUEST_PIXELS = 64 * 48
    case = CaseFactory.create(created_by=clinician)
    files = [SimpleUploadedFile(f"{n}.jpg", jpeg_bytes(), "image/jpeg") for n in range(2)]
    response = login(clinician).post(reverse("cases:upload", args=[case.pk]), {"images": files})
    assert response.status_code == 400
    assert "megapixels one upload may hold" in response.text
    assert not Image.objects.exists()


def test_unreadable_files_are_left_to_the_per_file_checks(settings, clinician):
    settings.UPLOAD_MAX_REQUEST_PIXELS = 1
    case = CaseFactory.create(created_by=clinician)
    files = [SimpleUploadedFile("notes.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")]
    response = api_client(clinician).post(
        reverse("api:case-images", args=[case.pk]), {"images": files}, format="multipart"
    )
    assert response.status_code == 400
    assert "damaged or incomplete" in " ".join(response.json()["error"]["details"]["images"])
