from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, transaction

from webapp.accounts.models import User
from webapp.accounts.roles import user_can_upload
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.cases.imaging import (
    SanitizedImage,
    image_header_pixels,
    image_sanitize,
    image_shape_check,
)
from webapp.cases.models import BodySite, Case, Image
from webapp.scoring.services import prediction_create

logger = logging.getLogger(__name__)


@transaction.atomic
def case_create(
    *, created_by: User, subject_ref: str, body_site: BodySite, notes: str = ""
) -> Case:
    """Open a case for one lesion."""
    if not user_can_upload(created_by):
        raise PermissionDenied("Only clinicians and admins create cases.")
    case = Case(
        created_by=created_by, subject_ref=subject_ref.strip(), body_site=body_site, notes=notes
    )
    case.full_clean()
    case.save()
    audit_record(
        action=AuditAction.CASE_CREATED,
        actor=created_by,
        case=case,
        data={"subject_ref": case.subject_ref, "body_site": case.body_site},
    )
    return case


def _display_name(filename: str | None) -> str:
    """The upload's own name, kept only for display: no path, no control characters."""
    name = PurePath(filename or "").name
    printable = "".join(char for char in name if char.isprintable()).strip()
    return (printable or "upload")[:255]


def case_images_upload(
    *, case: Case, files: Sequence[UploadedFile], uploaded_by: User
) -> list[Image]:
    """Store uploaded images of a case and queue each for scoring.

    All images and their pending predictions are created in one transaction, so either every
    file of the upload is accepted or none is; scoring tasks are queued only once it commits.
    """
    if not user_can_upload(uploaded_by):
        raise PermissionDenied("Only clinicians and admins upload images.")
    if not files:
        raise ValidationError({"images": "Choose at least one image."}, code="required")

    _request_pixels_check(files=files)
    # Decoding and re-encoding is the slow part: do it before the transaction opens.
    sanitized: list[tuple[str, SanitizedImage]] = []
    errors: list[str] = []
    for uploaded in files:
        name = _display_name(uploaded.name)
        if uploaded.size is not None and uploaded.size > settings.UPLOAD_MAX_IMAGE_BYTES:
            # Refused before reading: a huge file must not be pulled into memory to be judged.
            limit_mb = settings.UPLOAD_MAX_IMAGE_BYTES // (1024 * 1024)
            errors.append(f"{name}: The file is larger than the {limit_mb} MB limit.")
            continue
        try:
            clean = image_sanitize(data=uploaded.read())
            image_shape_check(width=clean.width, height=clean.height)
            sanitized.append((name, clean))
        except ValidationError as exc:
            errors.append(f"{name}: {' '.join(exc.messages)}")
    if errors:
        raise ValidationError({"images": errors}, code="invalid_image")

    images: list[Image] = []
    stored_names: list[str] = []
    stored = False
    try:
        with transaction.atomic():
            _images_store(
                case=case,
                sanitized=sanitized,
                uploaded_by=uploaded_by,
                images=images,
                stored_names=stored_names,
            )
            stored = True
    except BaseException as exc:
        if _upload_rolled_back(body_finished=stored, exc=exc):
            # The database failed, or the request was cut short, before the rows committed:
            # take the files written for them too, so a failed upload leaves nothing behind.
            for name in stored_names:
                _stored_file_delete(name)
        raise
    return images


def _request_pixels_check(*, files: Sequence[UploadedFile]) -> None:
    """Refuse an upload whose images together exceed the pixel budget, before decoding any."""
    budget = settings.UPLOAD_MAX_REQUEST_PIXELS
    total = 0
    for uploaded in files:
        if uploaded.size is not None and uploaded.size > settings.UPLOAD_MAX_IMAGE_BYTES:
            continue  # refused on its own, unread
        total += image_header_pixels(file=uploaded)
    if total > budget:
        raise ValidationError(
            {
                "images": (
                    f"These {len(files)} images have {total / 1_000_000:.1f} megapixels together, "
                    f"more than the {budget / 1_000_000:g} megapixels one upload may hold. "
                    "Upload them in smaller groups."
                )
            },
            code="too_many_pixels",
        )


def _stored_file_delete(name: str) -> None:
    try:
        default_storage.delete(name)
    except Exception:
        logger.warning("Could not remove %s after a failed upload", name, exc_info=True)


def _upload_rolled_back(*, body_finished: bool, exc: BaseException) -> bool:
    """Whether an upload that raised left no rows, so that its files may go.

    Past the end of the transaction's body, the exception came either from the commit (a
    DatabaseError; the rows are gone) or from a commit hook, after the rows were saved. The
    hooks run robustly, so only an interrupt gets out of one, e.g. the web server's worker
    timeout. A committed image's file must never be deleted: in doubt, the file stays.
    """
    return not body_finished or isinstance(exc, DatabaseError)


def _images_store(
    *,
    case: Case,
    sanitized: Sequence[tuple[str, SanitizedImage]],
    uploaded_by: User,
    images: list[Image],
    stored_names: list[str],
) -> None:
    """Write each file and its rows; called inside the upload's transaction."""
    for original_filename, clean in sanitized:
        image = Image(
            case=case,
            sha256=clean.sha256,
            width=clean.width,
            height=clean.height,
            format=clean.format,
            original_filename=original_filename,
            uploaded_by=uploaded_by,
        )
        image.file.save(f"upload{clean.extension}", ContentFile(clean.content), save=False)
        stored_names.append(image.file.name or "")
        image.save()
        prediction = prediction_create(image=image)
        audit_record(
            action=AuditAction.IMAGE_UPLOADED,
            actor=uploaded_by,
            case=case,
            data={
                "image_id": image.pk,
                "prediction_id": prediction.pk,
                "original_filename": original_filename,
                "sha256": image.sha256,
            },
        )
        images.append(image)


def case_record_view(*, case: Case, viewer: User, via: str = "page") -> None:
    """Note in the history that someone opened the case (its page, or through the API)."""
    audit_record(action=AuditAction.CASE_VIEWED, actor=viewer, case=case, data={"via": via})


def image_record_view(*, image: Image, viewer: User) -> None:
    """Note in the history that someone opened an image file."""
    audit_record(
        action=AuditAction.IMAGE_VIEWED,
        actor=viewer,
        case=image.case,
        data={"image_id": image.pk},
    )
