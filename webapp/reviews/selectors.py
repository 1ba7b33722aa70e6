from __future__ import annotations

import datetime as dt
import enum

from django.db import models
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from webapp.accounts.models import User
from webapp.accounts.roles import user_sees_all_cases
from webapp.cases.models import QUEUED_STATES, Case, ReviewState
from webapp.cases.selectors import case_list
from webapp.reviews.models import Review
from webapp.scoring.models import Prediction, PredictionStatus


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


def queue_list(
    *,
    state: QueueFilter = QueueFilter.UNREVIEWED,
    ordering: QueueOrdering = QueueOrdering.PROBABILITY_DESC,
    flagged_from: dt.date | None = None,
    flagged_to: dt.date | None = None,
) -> QuerySet[Case]:
    """Return the queued cases, filtered by review state and flag date, in queue order.

    Each carries the model and image of its top flagged score (top_model_name,
    top_model_version, top_image_id) and, when an image of it needs a better one, the newest
    such image and the input gate's reason (gated_image_id, gate_reason).
    """
    states = {
        QueueFilter.UNREVIEWED: [ReviewState.UNREVIEWED],
        QueueFilter.NEEDS_IMAGE: [ReviewState.NEEDS_IMAGE],
        QueueFilter.REVIEWED: [ReviewState.REVIEWED],
        QueueFilter.ALL: QUEUED_STATES,
    }[state]
    # The model behind each case's top score, so the queue names it beside the number.
    top_flag = Prediction.objects.filter(
        image__case=OuterRef("pk"), status=PredictionStatus.DONE, high_risk=True
    ).order_by("-probability", "-id")
    # An image the model could not judge has no number to show: the queue says why instead.
    gated = (
        Prediction.objects.filter(image__case=OuterRef("pk"), status=PredictionStatus.DONE)
        .exclude(gate_reason="")
        .order_by("-finished_at", "-id")
    )
    cases = (
        Case.objects.filter(review_state__in=states)
        .select_related("created_by")
        .annotate(
            top_model_name=Subquery(top_flag.values("model_name")[:1]),
            top_model_version=Subquery(top_flag.values("model_version")[:1]),
            top_image_id=Subquery(top_flag.values("image_id")[:1]),
            gated_image_id=Subquery(gated.values("image_id")[:1]),
            gate_reason=Subquery(gated.values("gate_reason")[:1]),
        )
    )
    # Day bounds as instants in the current time zone: a range on flagged_at itself can use
    # the queue indexes, where flagged_at__date would compute a date for every row.
    if flagged_from is not None:
        cases = cases.filter(flagged_at__gte=_day_start(flagged_from))
    if flagged_to is not None:
        cases = cases.filter(flagged_at__lt=_day_start(flagged_to + dt.timedelta(days=1)))
    return cases.order_by(*_ORDER_BY[ordering])


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def review_list(*, user: User, case_id: int | None = None) -> QuerySet[Review]:
    """Return the reviews of cases the user may see, newest first."""
    reviews = Review.objects.select_related("reviewer", "prediction", "case")
    if not user_sees_all_cases(user):
        # Those who see every case skip the filter: a semi-join over every case would make
        # each page (and its count) scan the whole case table.
        reviews = reviews.filter(case__in=case_list(user=user))
    if case_id is not None:
        reviews = reviews.filter(case_id=case_id)
    return reviews.order_by("-created_at", "-id")


def case_reviewable_predictions(*, case: Case) -> QuerySet[Prediction]:
    """Return the finished scores of a case, flagged and unreviewed ones first, then those of
    images that need a better one.

    Each carries `reviewed`: whether it has a review yet.
    """
    gated_first = models.Case(
        models.When(gate_reason="", then=1), default=0, output_field=models.IntegerField()
    )
    return (
        Prediction.objects.filter(image__case=case, status=PredictionStatus.DONE)
        .select_related("image")
        .annotate(reviewed=Exists(Review.objects.filter(prediction=OuterRef("pk"))))
        .order_by("-high_risk", gated_first, "reviewed", "-probability", "-id")
    )
