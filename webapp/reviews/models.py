from django.conf import settings
from django.db import models


class Decision(models.TextChoices):
    AGREE = "agree", "Agree"
    DISAGREE = "disagree", "Disagree"
    FOLLOW_UP = "follow_up", "Needs follow-up"
    REFER = "refer", "Refer"


class Review(models.Model):
    """A reviewer's decision on one scored image of a case."""

    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="reviews")
    prediction = models.ForeignKey(
        "scoring.Prediction", on_delete=models.PROTECT, related_name="reviews"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    decision = models.CharField(max_length=16, choices=Decision.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["case", "-created_at"], name="review_case_created_idx"),
            # The review list, newest first with the id breaking ties, for those who see all.
            models.Index(fields=["-created_at", "-id"], name="review_created_idx"),
            models.Index(fields=["reviewer", "-created_at"], name="review_reviewer_created_idx"),
        ]

    def __str__(self) -> str:
        return f"Review {self.pk}: {self.decision} on case {self.case_id}"
