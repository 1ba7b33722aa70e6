from __future__ import annotations

from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
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

    Each carries the highest finished score of an image neither withdrawn nor turned away by
    the input gate (top_score, top_score_high_risk), whether an image of it needs a better one
    (needs_image), its latest review's decision (latest_decision) and how many of its images are
    not withdrawn (image_count). `search` keeps the cases whose subject reference contains it.
    Subqueries, so a page costs the same queries however many cases or images there are.
    """
    # The highest score rather than the newest: the one that put the case in the queue, so a
    # flagged case never shows a low number from a later, quieter image beside its status.
    finished = Prediction.objects.filter(
        image__case=OuterRef("pk"),
        image__withdrawn_at__isnull=True,
        status=PredictionStatus.DONE,
    )
    highest = finished.filter(gate_reason="").order_by("-probability", "-id")
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
        top_score=Subquery(highest.values("probability")[:1]),
        top_score_high_risk=Subquery(highest.values("high_risk")[:1]),
        needs_image=Exists(finished.exclude(gate_reason="")),
        latest_decision=Subquery(latest_review.values("decision")[:1]),
        image_count=Coalesce(Subquery(image_count, output_field=IntegerField()), 0),
    )
