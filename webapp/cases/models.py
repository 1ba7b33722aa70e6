from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models


class BodySite(models.TextChoices):
    HEAD_NECK = "head_neck", "Head / neck"
    TRUNK_ANTERIOR = "trunk_anterior", "Trunk (anterior)"
    TRUNK_POSTERIOR = "trunk_posterior", "Trunk (posterior)"
    UPPER_EXTREMITY = "upper_extremity", "Upper extremity"
    LOWER_EXTREMITY = "lower_extremity", "Lower extremity"
    PALMS_SOLES = "palms_soles", "Palms / soles"
    ORAL_GENITAL = "oral_genital", "Oral / genital"
    OTHER = "other", "Other / unknown"


class ReviewState(models.TextChoices):
    NOT_FLAGGED = "not_flagged", "Not flagged"
    UNREVIEWED = "unreviewed", "Flagged, awaiting review"
    # An image the model cannot judge (the input gate's verdict), awaiting a reviewer.
    NEEDS_IMAGE = "needs_image", "Needs a better image"
    REVIEWED = "reviewed", "Flagged, reviewed"


# The states of the reviewer queue, every case a reviewer has been asked to look at.
QUEUED_STATES = [ReviewState.UNREVIEWED, ReviewState.NEEDS_IMAGE, ReviewState.REVIEWED]


class Case(models.Model):
    """One skin lesion, followed through one or more images over time."""

    subject_ref = models.CharField(
        "subject reference",
        max_length=64,
        help_text="A pseudonymous reference for the person. Never a name.",
    )
    body_site = models.CharField(max_length=32, choices=BodySite.choices)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cases"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The reviewer queue's state, kept on the case (by cases.services.case_queue_refresh) so
    # that the queue is one indexed query rather than an aggregate over predictions and reviews.
    review_state = models.CharField(
        max_length=16, choices=ReviewState.choices, default=ReviewState.NOT_FLAGGED
    )
    flagged_at = models.DateTimeField(null=True, blank=True)
    top_probability = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            # Every list of cases is newest first, with the id breaking ties (page order is
            # stable), for one creator or for everyone.
            models.Index(
                fields=["created_by", "-created_at", "-id"], name="case_creator_created_idx"
            ),
            models.Index(fields=["-created_at", "-id"], name="case_created_idx"),
            # The queue filters on one review_state and sorts by confidence or by flag date; the
            # indexes hold the whole sort key, so a page is read in order and stops at its end.
            models.Index(
                fields=["review_state", "-top_probability", "-flagged_at", "-id"],
                name="case_queue_probability_idx",
            ),
            models.Index(
                fields=["review_state", "-flagged_at", "-id"], name="case_queue_flagged_idx"
            ),
            # "All queued cases" spans several states: one partial index per ordering keeps it
            # an ordered index read too, instead of sorting every queued case for each page.
            models.Index(
                fields=["-top_probability", "-flagged_at", "-id"],
                name="case_queue_all_probability_idx",
                condition=models.Q(review_state__in=QUEUED_STATES),
            ),
            models.Index(
                fields=["-flagged_at", "-id"],
                name="case_queue_all_flagged_idx",
                condition=models.Q(review_state__in=QUEUED_STATES),
            ),
        ]

    def __str__(self) -> str:
        return f"Case {self.pk} ({self.subject_ref})"


def image_upload_to(image: Image, filename: str) -> str:
    """Store under a random name: the original filename may carry identifying text."""
    suffix = PurePosixPath(filename).suffix.lower()
    return f"cases/{image.case_id}/{uuid.uuid4().hex}{suffix}"


def thumbnail_upload_to(image: Image, filename: str) -> str:
    """Beside the image's own file, under a name of its own for each attempt to make one."""
    image_name = PurePosixPath(image.file.name or "")
    return str(image_name.with_name(f"{image_name.stem}-thumb-{uuid.uuid4().hex[:12]}.jpg"))


class Image(models.Model):
    """One stored image of a case, with its metadata stripped and orientation applied.

    A withdrawn image (taken back by its case's creator or an admin, with a reason) keeps its
    file, scores and reviews, but is no longer scored and no longer counts in the review queue.
    """

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="images")
    file = models.FileField(upload_to=image_upload_to, max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=16)
    original_filename = models.CharField(max_length=255, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="uploaded_images"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)
    # A small JPEG for lists and pickers, made at upload or on first request for older images.
    thumbnail = models.FileField(upload_to=thumbnail_upload_to, max_length=255, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="withdrawn_images",
    )
    withdrawal_reason = models.TextField(blank=True)

    class Meta:
        ordering = ("uploaded_at", "id")
        indexes = [models.Index(fields=["case", "uploaded_at"], name="image_case_uploaded_idx")]
        constraints = [
            # A withdrawal always names who made it.
            models.CheckConstraint(
                name="image_withdrawal_has_actor",
                condition=models.Q(withdrawn_at__isnull=True, withdrawn_by__isnull=True)
                | models.Q(withdrawn_at__isnull=False, withdrawn_by__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Image {self.pk} of case {self.case_id}"

    @property
    def withdrawn(self) -> bool:
        return self.withdrawn_at is not None
