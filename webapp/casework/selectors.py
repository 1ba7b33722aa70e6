from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce

from webapp.accounts.models import User
from webapp.cases.models import Case, Image
from webapp.cases.selectors import case_list
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
        .select_related("uploaded_by", "withdrawn_by")
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
    """Whether any image of the case, not withdrawn, is still waiting for, or being given, a
    score (a withdrawn image's is never given)."""
    return Prediction.objects.filter(
        image__case=case,
        image__withdrawn_at__isnull=True,
        status__in=(PredictionStatus.PENDING, PredictionStatus.RUNNING),
    ).exists()


def case_overview_list(*, user: User, search: str = "") -> QuerySet[Case]:
    """Return the cases the user may see, as case_list does, for the case list page.

    Each carries its latest finished score of an image not withdrawn (latest_probability,
    latest_high_risk, latest_gate_reason), its latest review's decision (latest_decision) and
    how many of its images are not withdrawn (image_count). `search` keeps the cases whose
    subject reference contains it. Subqueries, so a page costs the same queries however many
    cases or images there are.
    """
    latest_score = Prediction.objects.filter(
        image__case=OuterRef("pk"),
        image__withdrawn_at__isnull=True,
        status=PredictionStatus.DONE,
    ).order_by("-finished_at", "-id")
    latest_review = Review.objects.filter(case=OuterRef("pk")).order_by("-created_at", "-id")
    image_count = (
        Image.objects.filter(case=OuterRef("pk"), withdrawn_at__isnull=True)
        .order_by()
        .values("case")
        .annotate(count=Count("pk"))
        .values("count")
    )
    cases = case_list(user=user)
    if search:
        cases = cases.filter(subject_ref__icontains=search)
    return cases.annotate(
        latest_probability=Subquery(latest_score.values("probability")[:1]),
        latest_high_risk=Subquery(latest_score.values("high_risk")[:1]),
        latest_gate_reason=Subquery(latest_score.values("gate_reason")[:1]),
        latest_decision=Subquery(latest_review.values("decision")[:1]),
        image_count=Coalesce(Subquery(image_count, output_field=IntegerField()), 0),
    )
