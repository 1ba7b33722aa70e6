from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import FileResponse
from django.urls import reverse

from tests.webapp.conftest import login
from tests.webapp.factories import CaseFactory, ImageFactory
from webapp.accounts.models import User
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.imaging import THUMBNAIL_SIDE
from webapp.cases.models import Image
from webapp.cases.services import image_thumbnail_ensure
from webapp.casework.services import case_images_upload

pytestmark = pytest.mark.django_db


def noisy_jpeg(width: int, height: int) -> bytes:
    """A photo-like JPEG: noise compresses as badly as skin texture does."""
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_an_upload_stores_a_thumbnail_much_smaller_than_the_image_with_its_shape(clinician):
    case = CaseFactory.create(created_by=clinician)
    upload = SimpleUploadedFile("big.jpg", noisy_jpeg(1200, 800), content_type="image/jpeg")
    [image] = case_images_upload(case=case, files=[upload], uploaded_by=clinician).images

    assert image.thumbnail.name
    with image.thumbnail.open("rb") as handle:
        thumbnail = handle.read()
    with PIL.Image.open(io.BytesIO(thumbnail)) as small:
        assert small.format == "JPEG"
        assert small.size == (THUMBNAIL_SIDE, round(THUMBNAIL_SIDE * 800 / 1200))
    assert len(thumbnail) * 5 < image.file.size


def test_an_image_no_larger_than_a_thumbnail_is_not_enlarged(clinician):
    image = ImageFactory.create(case__created_by=clinician)
    image = image_thumbnail_ensure(image=image)
    with image.thumbnail.open("rb") as handle, PIL.Image.open(handle) as small:
        assert small.size == (64, 48)


def test_the_view_makes_the_thumbnail_of_an_image_stored_before_thumbnails(clinician):
    image = ImageFactory.create(case__created_by=clinician)
    assert not image.thumbnail

    response = login(clinician).get(
        reverse("cases:image-thumbnail", args=[image.case_id, image.pk])
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"].startswith("private, max-age=")
    assert isinstance(response, FileResponse)
    with PIL.Image.open(io.BytesIO(response.getvalue())) as small:
        assert small.size == (64, 48)
    image.refresh_from_db()
    assert image.thumbnail.name
    # A thumbnail is shown with its case, whose reading is recorded; it is no view of its own.
    assert not AuditEvent.objects.filter(action=AuditAction.IMAGE_VIEWED).exists()


def test_two_requests_racing_to_make_a_thumbnail_keep_one(clinician):
    image = ImageFactory.create(case__created_by=clinician)
    first, second = Image.objects.get(pk=image.pk), Image.objects.get(pk=image.pk)

    # Both read the row before either stored a thumbnail.
    made_first = image_thumbnail_ensure(image=first)
    made_second = image_thumbnail_ensure(image=second)

    assert made_first.thumbnail.name == made_second.thumbnail.name
    image.refresh_from_db()
    assert image.thumbnail.name == made_first.thumbnail.name
    storage = image.thumbnail.storage
    folder = str(image.thumbnail.name).rsplit("/", 1)[0]
    thumbnails = [name for name in storage.listdir(folder)[1] if "-thumb-" in name]
    assert len(thumbnails) == 1


def test_a_thumbnail_is_refused_as_the_image_is_to_someone_who_may_not_see_it(
    clinician, other_clinician
):
    image = ImageFactory.create(case__created_by=clinician)
    url = reverse("cases:image-thumbnail", args=[image.case_id, image.pk])
    assert login(other_clinician).get(url).status_code == 404
    wrong_case = CaseFactory.create(created_by=clinician)
    assert (
        login(clinician)
        .get(reverse("cases:image-thumbnail", args=[wrong_case.pk, image.pk]))
        .status_code
        == 404
    )


def test_the_case_page_shows_thumbnails_linking_to_the_viewer(clinician: User):
    image = ImageFactory.create(case__created_by=clinician)
    page = login(clinician).get(reverse("cases:detail", args=[image.case_id])).text
    assert f'src="{reverse("cases:image-thumbnail", args=[image.case_id, image.pk])}"' in page
    assert f'href="{reverse("cases:image-viewer", args=[image.case_id, image.pk])}"' in page
    assert reverse("cases:image-file", args=[image.case_id, image.pk]) not in page
