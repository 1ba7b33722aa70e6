from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from webapp.cases.models import Case, Image
from webapp.reviews.models import Review
from webapp.scoring.models import Prediction, PredictionStatus


def case_image_list(*, case: Case) -> QuerySet[Image]:
    """Return a case's images, each with its predictions newest first and their standing
    reviews (those no newer review superseded; the history keeps the others)."""
    standing_reviews = Prefetch(
        "reviews", queryset=Review.objects.filter(superseded_at=None).select_related("reviewer")
    )
    return (
        Image.objects.filter(case=case)
        .select_related("uploaded_by")
        .prefetch_related(
            Prefetch(
                "predictions",
                queryset=Prediction.objects.prefetch_related(standing_reviews).order_by(
                    "-created_at", "-id"
                ),
            )
        )
        .order_by("uploaded_at", "id")
    )


def case_scoring_in_progress(*, case: Case) -> bool:
    """Whether any image of the case is still waiting for, or being given, a score."""
    return Prediction.objects.filter(
        image__case=case,
        status__in=(PredictionStatus.PENDING, PredictionStatus.RUNNING),
    ).exists()
