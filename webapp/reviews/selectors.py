from __future__ import annotations

import datetime as dt
import enum

from django.db import models
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from webapp.accounts.models import User
from webapp.accounts.roles import user_sees_all_cases
from webapp.cases.models import QUEUED_STATES, Case, Image, ReviewState
from webapp.cases.selectors import case_list
from webapp.reviews.models import CaseClaim, Review
from webapp.scoring.models import Prediction, PredictionStatus

# A finished score that asks a reviewer for a decision: flagged high risk, or of an image the
# model cannot judge (the input gate gave a reason).
# A finished score asking for a reviewer's decision: flagged, or turned away by the input gate,
# of an image that has not been withdrawn.
ACTIVE_SCORE = Q(status=PredictionStatus.DONE, image__withdrawn_at=None)
QUEUED_SCORE = ACTIVE_SCORE & (Q(high_risk=True) | ~Q(gate_reason=""))


class QueueFilter(enum.StrEnum):
    UNREVIEWED = "unreviewed"
    NEEDS_IMAGE = "needs_image"
    REVIEWED = "reviewed"
    ALL = "all"


class QueueOrdering(enum.StrEnum):
    PROBABILITY_DESC = "-probability"
    PROBABILITY_ASC = "probability"
    FLAGGED_DESC = "-flagged"
    FLAGGED_ASC = "flagged"


_ORDER_BY: dict[QueueOrdering, tuple[str, ...]] = {
    QueueOrdering.PROBABILITY_DESC: ("-top_probability", "-flagged_at", "-id"),
    QueueOrdering.PROBABILITY_ASC: ("top_probability", "flagged_at", "id"),
    QueueOrdering.FLAGGED_DESC: ("-flagged_at", "-id"),
    QueueOrdering.FLAGGED_ASC: ("flagged_at", "id"),
}


class SubqueryCount(Subquery):
    """The number of rows a subquery finds, 0 for none (a Count would need a GROUP BY)."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) _count)"
    output_field = models.IntegerField()


def queue_list(
    *,
    state: QueueFilter = QueueFilter.UNREVIEWED,
    ordering: QueueOrdering = QueueOrdering.PROBABILITY_DESC,
    flagged_from: dt.date | None = None,
    flagged_to: dt.date | None = None,
    with_images: bool = False,
) -> QuerySet[Case]:
    """Return the queued cases, filtered by review state and flag date, in queue order.

    Each carries the model, threshold and image of its top flagged score (top_model_name,
    top_model_version, top_threshold, top_image_id); when an image of it needs a better one,
    the newest such image and the input gate's reason (gated_image_id, gate_reason); how many
    images it has, how many scores ask for a decision and how many of those have a standing
    review (image_count, queued_count, reviewed_count); how many of its images need a better
    one and have no decision yet (needs_image_count); who holds it while a claim on it lasts
    (claim_reviewer_id, claim_reviewer_name, claim_expires_at); and `with_images`, in
    `queued_images`, the images whose scores ask for a decision, in upload order.
    """
    states = {
        QueueFilter.UNREVIEWED: [ReviewState.UNREVIEWED],
        QueueFilter.NEEDS_IMAGE: [ReviewState.NEEDS_IMAGE],
        QueueFilter.REVIEWED: [ReviewState.REVIEWED],
        QueueFilter.ALL: QUEUED_STATES,
    }[state]
    # The model behind each case's top score, so the queue names it beside the number.
    top_flag = Prediction.objects.filter(
        ACTIVE_SCORE, image__case=OuterRef("pk"), high_risk=True
    ).order_by("-probability", "-id")
    # An image the model could not judge has no number to show: the queue says why instead.
    gated = (
        Prediction.objects.filter(ACTIVE_SCORE, image__case=OuterRef("pk"))
        .exclude(gate_reason="")
        .order_by("-finished_at", "-id")
    )
    queued_scores = Prediction.objects.filter(QUEUED_SCORE, image__case=OuterRef("pk"))
    standing_review = Review.objects.filter(prediction=OuterRef("pk"), superseded_at=None)
    # Counted apart from the gated image named above: a flagged case's row shows its score, and
    # would otherwise hide that some of its images still need a better one.
    needs_image = Image.objects.filter(case=OuterRef("pk"), withdrawn_at=None).filter(
        Exists(
            Prediction.objects.filter(ACTIVE_SCORE, image=OuterRef("pk"))
            .exclude(gate_reason="")
            .exclude(Exists(standing_review))
        )
    )
    live_claim = CaseClaim.objects.filter(case=OuterRef("pk"), expires_at__gt=timezone.now())
    cases = (
        Case.objects.filter(review_state__in=states)
        .select_related("created_by")
        .annotate(
            top_model_name=Subquery(top_flag.values("model_name")[:1]),
            top_model_version=Subquery(top_flag.values("model_version")[:1]),
            top_threshold=Subquery(top_flag.values("threshold")[:1]),
            top_image_id=Subquery(top_flag.values("image_id")[:1]),
            gated_image_id=Subquery(gated.values("image_id")[:1]),
            gate_reason=Subquery(gated.values("gate_reason")[:1]),
            image_count=SubqueryCount(
                Image.objects.filter(case=OuterRef("pk"), withdrawn_at=None).values("pk")
            ),
            queued_count=SubqueryCount(queued_scores.values("pk")),
            reviewed_count=SubqueryCount(
                queued_scores.filter(Exists(standing_review)).values("pk")
            ),
            needs_image_count=SubqueryCount(needs_image.values("pk")),
            claim_reviewer_id=Subquery(live_claim.values("reviewer_id")[:1]),
            claim_reviewer_name=Subquery(live_claim.values("reviewer__username")[:1]),
            claim_expires_at=Subquery(live_claim.values("expires_at")[:1]),
        )
    )
    if with_images:
        cases = cases.prefetch_related(
            Prefetch(
                "images",
                queryset=Image.objects.filter(
                    Exists(Prediction.objects.filter(QUEUED_SCORE, image=OuterRef("pk")))
                ).order_by("uploaded_at", "id"),
                to_attr="queued_images",
            )
        )
    # Day bounds as instants in the current time zone: a range on flagged_at itself can use
    # the queue indexes, where flagged_at__date would compute a date for every row.
    if flagged_from is not None:
        cases = cases.filter(flagged_at__gte=_day_start(flagged_from))
    if flagged_to is not None:
        cases = cases.filter(flagged_at__lt=_day_start(flagged_to + dt.timedelta(days=1)))
    return cases.order_by(*_ORDER_BY[ordering])


def queue_unclaimed(
    *,
    state: QueueFilter = QueueFilter.UNREVIEWED,
    ordering: QueueOrdering = QueueOrdering.PROBABILITY_DESC,
    flagged_from: dt.date | None = None,
    flagged_to: dt.date | None = None,
) -> QuerySet[Case]:
    """Return the cases of a queue, as filtered and ordered, that await a decision and that no
    one holds: where "next" sends a reviewer.

    A case the reviewer holds themselves is left out too, so that moving on from a case without
    reviewing it leads to another one rather than back to it.
    """
    live_claims = CaseClaim.objects.filter(case=OuterRef("pk"), expires_at__gt=timezone.now())
    return (
        queue_list(state=state, ordering=ordering, flagged_from=flagged_from, flagged_to=flagged_to)
        .filter(review_state__in=[ReviewState.UNREVIEWED, ReviewState.NEEDS_IMAGE])
        .exclude(Exists(live_claims))
    )


def case_undecided_count(*, case: Case) -> int:
    """Return how many scores of a case ask for a decision and have no standing review."""
    return (
        Prediction.objects.filter(QUEUED_SCORE, image__case=case)
        .exclude(Exists(Review.objects.filter(prediction=OuterRef("pk"), superseded_at=None)))
        .count()
    )


def case_claim_get(*, case: Case) -> CaseClaim | None:
    """Return the claim on a case while it lasts, with its reviewer; None when no one holds it."""
    return (
        CaseClaim.objects.filter(case=case, expires_at__gt=timezone.now())
        .select_related("reviewer")
        .first()
    )


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def review_list(*, user: User, case_id: int | None = None) -> QuerySet[Review]:
    """Return the reviews of cases the user may see, newest first, superseded ones included.

    Each superseded review carries the one that replaced it (superseded_by, with its reviewer).
    """
    reviews = Review.objects.select_related(
        "reviewer", "prediction", "case", "superseded_by__reviewer"
    )
    if not user_sees_all_cases(user):
        # Those who see every case skip the filter: a semi-join over every case would make
        # each page (and its count) scan the whole case table.
        reviews = reviews.filter(case__in=case_list(user=user))
    if case_id is not None:
        reviews = reviews.filter(case_id=case_id)
    return reviews.order_by("-created_at", "-id")


def case_review_predictions(*, case: Case) -> QuerySet[Prediction]:
    """Return the finished scores of a case that ask for a decision, in image upload order.

    Those are the flagged scores and the scores of images the model cannot judge; each carries
    its standing review, if any, in `standing_reviews` (a list of at most one).
    """
    return (
        Prediction.objects.filter(QUEUED_SCORE, image__case=case)
        .select_related("image")
        .prefetch_related(
            Prefetch(
                "reviews",
                queryset=Review.objects.filter(superseded_at=None).select_related("reviewer"),
                to_attr="standing_reviews",
            )
        )
        .order_by("image__uploaded_at", "image_id", "-created_at", "-id")
    )
