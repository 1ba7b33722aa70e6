from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class AuditAction(models.TextChoices):
    CASE_CREATED = "case.created", "Case created"
    CASE_VIEWED = "case.viewed", "Case viewed"
    CASE_UPDATED = "case.updated", "Case edited"
    IMAGE_UPLOADED = "image.uploaded", "Image uploaded"
    IMAGE_VIEWED = "image.viewed", "Image viewed"
    IMAGE_WITHDRAWN = "image.withdrawn", "Image withdrawn"
    PREDICTION_SCORED = "prediction.scored", "Image scored"
    PREDICTION_FAILED = "prediction.failed", "Scoring failed"
    REVIEW_RECORDED = "review.recorded", "Review recorded"
    CASE_CLAIMED = "case.claimed", "Case taken for review"
    USER_LOGGED_IN = "user.logged_in", "Signed in"
    USER_LOGGED_OUT = "user.logged_out", "Signed out"
    USER_LOGIN_FAILED = "user.login_failed", "Sign-in failed"
    TOKEN_REVOKED = "token.revoked", "API token revoked"
    # Reads of lists: one event per list shown, naming the rows in its data.
    CASE_LIST_VIEWED = "case.list_viewed", "Case list viewed"
    QUEUE_VIEWED = "queue.viewed", "Review queue viewed"
    REVIEW_LIST_VIEWED = "review.list_viewed", "Reviews viewed"
    PREDICTION_VIEWED = "prediction.viewed", "Score viewed"
    # A request refused for its role or for what it asked to see (403, 404) or unauthenticated.
    ACCESS_DENIED = "access.denied", "Access refused"


class AuditHistoryImmutableError(Exception):
    """Raised on any attempt to change or delete recorded history through the ORM."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    # Bulk paths bypass save() and delete(), so they are closed here as well.
    def update(self, **kwargs: Any) -> int:
        raise AuditHistoryImmutableError("Audit events cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditHistoryImmutableError("Audit events cannot be deleted.")


class AuditEvent(models.Model):
    """One entry of the append-only history: who did what to which case, and when.

    Rows are only ever inserted (by audit_record). The ORM refuses to change or delete them,
    the admin shows them read-only, and the API has no endpoint that writes them.
    """

    created_at = models.DateTimeField(auto_now_add=True)
    # Null actor: the scoring worker acted, not a person (or a sign-in failed).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    # A case with history is a clinical record: PROTECT keeps it from being deleted quietly.
    case = models.ForeignKey(
        "cases.Case",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    data = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ("created_at", "id")
        indexes = [
            models.Index(fields=["case", "created_at"], name="audit_case_created_idx"),
            # Recent events of one kind, such as the failed sign-ins an admin looks through.
            models.Index(fields=["action", "-created_at"], name="audit_action_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} case={self.case_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditHistoryImmutableError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditHistoryImmutableError("Audit events cannot be deleted.")
