from django.conf import settings
from django.db import models


class Decision(models.TextChoices):
    AGREE = "agree", "Agree"
    DISAGREE = "disagree", "Disagree"
    FOLLOW_UP = "follow_up", "Needs follow-up"
    REFER = "refer", "Refer"


class Review(models.Model):
    """A reviewer's decision on one scored image of a case.

    One review of a score stands; a newer one supersedes it (superseded_at, superseded_by),
    and the older stays in the history. Only webapp.reviews.services writes these rows.
    """

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
    # Set together when a newer review of the same score takes this one's place.
    superseded_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="supersedes",
    )

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["case", "-created_at"], name="review_case_created_idx"),
            # The review list, newest first with the id breaking ties, for those who see all.
            models.Index(fields=["-created_at", "-id"], name="review_created_idx"),
            models.Index(fields=["reviewer", "-created_at"], name="review_reviewer_created_idx"),
        ]
        constraints = [
            # The database, not only the service, keeps a score to one standing decision:
            # two reviewers racing on one image cannot both stand.
            models.UniqueConstraint(
                fields=["prediction"],
                condition=models.Q(superseded_at__isnull=True),
                name="review_one_standing_per_prediction",
            ),
            models.CheckConstraint(
                name="review_superseded_together",
                condition=models.Q(superseded_at__isnull=True, superseded_by__isnull=True)
                | models.Q(superseded_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Review {self.pk}: {self.decision} on case {self.case_id}"

    @property
    def standing(self) -> bool:
        """Whether this is the decision that counts for its score (no newer one replaced it)."""
        return self.superseded_at is None


class CaseClaim(models.Model):
    """A reviewer has a queued case open: others are not sent to it until it expires.

    One row per case at most; taking an expired claim overwrites it (reviews.services.case_claim).
    """

    case = models.OneToOneField(
        "cases.Case", on_delete=models.CASCADE, primary_key=True, related_name="claim"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="case_claims"
    )
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Case {self.case_id} taken by {self.reviewer_id} until {self.expires_at:%H:%M}"
