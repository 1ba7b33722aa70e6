from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from webapp.accounts.models import Role, User
from webapp.accounts.roles import user_can_upload, user_role
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.cases.imaging import (
    SanitizedImage,
    image_header_pixels,
    image_sanitize,
    image_shape_check,
    image_thumbnail,
)
from webapp.cases.models import BodySite, Case, Image, ReviewState, thumbnail_upload_to

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


def case_editable_by(*, case: Case, user: User) -> bool:
    """Whether the user may edit the case and withdraw its images: its creator, or an admin."""
    if not user_can_upload(user):
        return False
    return user_role(user) == Role.ADMIN or case.created_by_id == user.pk


# What an edit may change, in the order the history lists them.
CASE_EDITABLE_FIELDS = ("subject_ref", "body_site", "notes")


@transaction.atomic
def case_update(
    *, case: Case, updated_by: User, subject_ref: str, body_site: BodySite, notes: str
) -> Case:
    """Change a case's subject reference, body site or notes, recording before and after."""
    if not case_editable_by(case=case, user=updated_by):
        raise PermissionDenied("Only the case's creator or an admin edits it.")
    case = Case.objects.select_for_update().get(pk=case.pk)
    before = {name: getattr(case, name) for name in CASE_EDITABLE_FIELDS}
    case.subject_ref = subject_ref.strip()
    case.body_site = body_site
    case.notes = notes
    case.full_clean()
    after = {name: getattr(case, name) for name in CASE_EDITABLE_FIELDS}
    changed = [name for name in CASE_EDITABLE_FIELDS if before[name] != after[name]]
    if not changed:
        # Nothing to record: saving the same values is not an edit.
        return case
    case.save(update_fields=[*changed, "updated_at"])
    audit_record(
        action=AuditAction.CASE_UPDATED,
        actor=updated_by,
        case=case,
        data={
            "before": {name: before[name] for name in changed},
            "after": {name: after[name] for name in changed},
        },
    )
    return case


def _display_name(filename: str | None) -> str:
    """The upload's own name, kept only for display: no path, no control characters."""
    name = PurePath(filename or "").name
    printable = "".join(char for char in name if char.isprintable()).strip()
    return (printable or "upload")[:255]


def case_images_sanitize(
    *, files: Sequence[UploadedFile], uploaded_by: User
) -> list[tuple[str, SanitizedImage]]:
    """Check an upload's files and re-encode each, with its display name.

    An upload over the pixel budget is refused before any file is decoded; otherwise every file
    is checked, so that the ValidationError names each bad one. Decoding and re-encoding is the
    slow part of an upload: callers do it before any transaction opens.
    """
    if not user_can_upload(uploaded_by):
        raise PermissionDenied("Only clinicians and admins upload images.")
    if not files:
        raise ValidationError({"images": "Choose at least one image."}, code="required")

    _request_pixels_check(files=files)
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
    return sanitized


@dataclass(frozen=True)
class DuplicateUpload:
    """A file of an upload whose bytes the case already holds, in an image not withdrawn."""

    filename: str
    existing: Image


@dataclass
class StoredUpload:
    """What an upload stored, and which of its files were already stored."""

    images: list[Image] = field(default_factory=list)
    duplicates: list[DuplicateUpload] = field(default_factory=list)
    # Every file's image in upload order: the new one, or (True) the one already holding it.
    in_order: list[tuple[Image, bool]] = field(default_factory=list)


@contextmanager
def case_images_store(
    *, case: Case, sanitized: Sequence[tuple[str, SanitizedImage]], uploaded_by: User
) -> Iterator[StoredUpload]:
    """Write sanitized images' files and rows in a transaction the caller's block joins.

    A file whose bytes the case already holds (or that came earlier in the same upload) is
    not stored again: it is listed among the duplicates with the image that holds it. Every
    other image is stored, or none is: if the transaction does not commit, whatever in it
    failed, the files written for it are deleted too.
    """
    stored_names: list[str] = []
    body_finished = False
    try:
        with transaction.atomic():
            # Locked so that two uploads of the same bytes at once cannot both store them.
            Case.objects.select_for_update().filter(pk=case.pk).first()
            held = {
                image.sha256: image
                for image in Image.objects.filter(
                    case=case,
                    sha256__in={clean.sha256 for _, clean in sanitized},
                    withdrawn_at__isnull=True,
                ).order_by("-uploaded_at", "-id")
            }
            result = StoredUpload()
            for original_filename, clean in sanitized:
                if clean.sha256 in held:
                    existing = held[clean.sha256]
                    result.duplicates.append(
                        DuplicateUpload(filename=original_filename, existing=existing)
                    )
                    result.in_order.append((existing, True))
                    continue
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
                image.thumbnail.save("thumb.jpg", ContentFile(clean.thumbnail), save=False)
                stored_names.append(image.thumbnail.name or "")
                image.save()
                held[clean.sha256] = image
                result.images.append(image)
                result.in_order.append((image, False))
            yield result
            body_finished = True
    except BaseException as exc:
        if _upload_rolled_back(body_finished=body_finished, exc=exc):
            for name in stored_names:
                _stored_file_delete(name)
        raise


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


def case_record_view(*, case: Case, viewer: User, via: str = "page") -> None:
    """Note in the history that someone opened the case (its page, or through the API)."""
    audit_record(action=AuditAction.CASE_VIEWED, actor=viewer, case=case, data={"via": via})


def image_record_view(*, image: Image, viewer: User, via: str | None = None) -> None:
    """Note in the history that someone opened an image file (or, `via`, a page of it)."""
    data: dict[str, object] = {"image_id": image.pk}
    if via is not None:
        data["via"] = via
    audit_record(action=AuditAction.IMAGE_VIEWED, actor=viewer, case=image.case, data=data)


def image_thumbnail_ensure(*, image: Image) -> Image:
    """Return the image with its thumbnail, making one first if it has none (older uploads).

    Two requests may both find none and both make one: each writes a file of its own name,
    and only the first to set the row keeps it; the other deletes its file and takes the
    first's. A file the row names is never overwritten.
    """
    if image.thumbnail:
        return image
    with image.file.open("rb") as handle:
        content = image_thumbnail(data=handle.read())
    name = image.thumbnail.storage.save(
        thumbnail_upload_to(image, "thumb.jpg"), ContentFile(content)
    )
    claimed = Image.objects.filter(pk=image.pk, thumbnail="").update(thumbnail=name)
    if claimed != 1:
        _stored_file_delete(name)
    image.thumbnail.name = Image.objects.values_list("thumbnail", flat=True).get(pk=image.pk)
    return image


# A reason is a sentence or two, not a document.
WITHDRAWAL_REASON_MAX_LENGTH = 1000


@transaction.atomic
def image_withdraw(*, image: Image, withdrawn_by: User, reason: str) -> Image:
    """Take an image out of scoring and the review queue, keeping it and its history.

    Its scores and reviews stay as they are; the case's place in the queue is recomputed
    without them.
    """
    if not case_editable_by(case=image.case, user=withdrawn_by):
        raise PermissionDenied("Only the case's creator or an admin withdraws its images.")
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why the image is withdrawn."}, code="required")
    if len(reason) > WITHDRAWAL_REASON_MAX_LENGTH:
        raise ValidationError(
            {"reason": f"Keep the reason under {WITHDRAWAL_REASON_MAX_LENGTH} characters."},
            code="max_length",
        )
    image = Image.objects.select_for_update().select_related("case").get(pk=image.pk)
    if image.withdrawn_at is not None:
        raise ValidationError(
            f"This image was already withdrawn on {image.withdrawn_at:%Y-%m-%d %H:%M}.",
            code="already_withdrawn",
        )
    image.withdrawn_at = timezone.now()
    image.withdrawn_by = withdrawn_by
    image.withdrawal_reason = reason
    image.save(update_fields=["withdrawn_at", "withdrawn_by", "withdrawal_reason"])
    audit_record(
        action=AuditAction.IMAGE_WITHDRAWN,
        actor=withdrawn_by,
        case=image.case,
        data={"image_id": image.pk, "reason": reason},
    )
    case_queue_refresh(case_id=image.case_id)
    return image


# A case is flagged by a finished high-risk score of one of its images, and sent for a better
# image by a finished score the input gate turned away (its reason is not blank); a withdrawn
# image's scores count for neither. Scores and reviews are read through the relations scoring
# (Image.predictions) and reviews (Prediction.reviews) declare, by name: cases sits below both
# and imports neither. A score counts as reviewed by its standing review, the one no newer
# review has superseded.
ACTIVE_IMAGE = Q(images__withdrawn_at__isnull=True)
FLAGGED_SCORE = ACTIVE_IMAGE & Q(
    images__predictions__status="done", images__predictions__high_risk=True
)
GATED_SCORE = ACTIVE_IMAGE & Q(
    images__predictions__status="done", images__predictions__gate_reason__gt=""
)
REVIEWED_SCORE = Q(
    images__predictions__reviews__isnull=False,
    images__predictions__reviews__superseded_at__isnull=True,
)


@transaction.atomic
def case_queue_refresh(*, case_id: int) -> Case:
    """Recompute one case's place in the reviewer queue (see `case_queue_refresh_many`)."""
    return case_queue_refresh_many(case_ids=[case_id])[0]


def case_queue_refresh_many(*, case_ids: Iterable[int]) -> list[Case]:
    """Recompute cases' places in the reviewer queue from their flagged and gated scores and
    their reviews.

    A case awaits review while any high-risk score of it has no standing review; otherwise it
    needs a better image while any score the input gate turned away has none, since the model
    said nothing of that image. A case whose every such score is reviewed is reviewed, and a
    new one puts it back. Three queries whatever the number of cases, so a worker settling a
    batch of scores refreshes all their cases at once. Call inside a transaction; scoring calls
    it when scores land, reviews when a review is recorded.
    """
    # The row locks order concurrent refreshes (two images scored at once, or a score and a
    # review) so the last writer always works from the other's committed rows; taken in id
    # order, so two workers refreshing overlapping cases cannot deadlock.
    cases = list(Case.objects.select_for_update().filter(pk__in=set(case_ids)).order_by("pk"))
    if not cases:
        raise Case.DoesNotExist(f"No case among {sorted(set(case_ids))}.")
    summaries = {
        row["pk"]: row
        for row in Case.objects.filter(pk__in=[case.pk for case in cases])
        .values("pk")
        .annotate(
            # The probability of a score the gate turned away is no risk: it never ranks.
            top=Max("images__predictions__probability", filter=FLAGGED_SCORE),
            latest=Max("images__predictions__finished_at", filter=FLAGGED_SCORE | GATED_SCORE),
            queued=Count("images__predictions", filter=FLAGGED_SCORE | GATED_SCORE, distinct=True),
            flagged=Count("images__predictions", filter=FLAGGED_SCORE, distinct=True),
            flagged_reviewed=Count(
                "images__predictions", filter=FLAGGED_SCORE & REVIEWED_SCORE, distinct=True
            ),
            gated=Count("images__predictions", filter=GATED_SCORE, distinct=True),
            gated_reviewed=Count(
                "images__predictions", filter=GATED_SCORE & REVIEWED_SCORE, distinct=True
            ),
        )
    }
    now = timezone.now()
    for case in cases:
        summary = summaries[case.pk]
        if not summary["queued"]:
            case.review_state = ReviewState.NOT_FLAGGED
        elif summary["flagged_reviewed"] < summary["flagged"]:
            case.review_state = ReviewState.UNREVIEWED
        elif summary["gated_reviewed"] < summary["gated"]:
            case.review_state = ReviewState.NEEDS_IMAGE
        else:
            case.review_state = ReviewState.REVIEWED
        case.top_probability = summary["top"]
        case.flagged_at = summary["latest"]
        # bulk_update skips auto_now.
        case.updated_at = now
    Case.objects.bulk_update(cases, ["review_state", "top_probability", "flagged_at", "updated_at"])
    return cases
