from __future__ import annotations

from collections.abc import Sequence

from django.core.files.uploadedfile import UploadedFile

from webapp.accounts.models import User
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.cases.models import Case
from webapp.cases.services import StoredUpload, case_images_sanitize, case_images_store
from webapp.scoring.services import prediction_create


def case_images_upload(
    *, case: Case, files: Sequence[UploadedFile], uploaded_by: User
) -> StoredUpload:
    """Store uploaded images of a case and queue each for scoring.

    A file whose bytes the case already holds is not stored again; the answer lists it among
    the duplicates, with the image that holds it. The other images and their pending
    predictions are created in one transaction, so either every one of them is accepted or
    none is; scoring tasks are queued only once it commits.
    """
    sanitized = case_images_sanitize(files=files, uploaded_by=uploaded_by)
    with case_images_store(case=case, sanitized=sanitized, uploaded_by=uploaded_by) as stored:
        for image in stored.images:
            prediction = prediction_create(image=image)
            audit_record(
                action=AuditAction.IMAGE_UPLOADED,
                actor=uploaded_by,
                case=case,
                data={
                    "image_id": image.pk,
                    "prediction_id": prediction.pk,
                    "original_filename": image.original_filename,
                    "sha256": image.sha256,
                },
            )
    return stored
