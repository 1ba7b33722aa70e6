from django.conf import settings
from django.db import models


class AuditAction(models.TextChoices):
    CASE_CREATED = "case.created", "Case created"
    CASE_VIEWED = "case.viewed", "Case viewed"
    IMAGE_UPLOADED = "image.uploaded", "Image uploaded"
    PREDICTION_SCORED = "prediction.scored", "Image scored"
    PREDICTION_FAILED = "prediction.failed", "Scoring failed"
    REVIEW_RECORDED = "review.recorded", "Review recorded"


class AuditEvent(models.Model):
    """One entry of the append-only history: who did what to which case, and when.

    Rows are only ever inserted (by audit_record); the admin shows them read-only.
    """

    created_at = models.DateTimeField(auto_now_add=True)
    # Null actor: the scoring worker acted, not a person.
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

    class Meta:
        ordering = ("created_at", "id")
        indexes = [models.Index(fields=["case", "created_at"], name="audit_case_created_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} case={self.case_id}"
