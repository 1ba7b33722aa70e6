from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from webapp.accounts.models import User
from webapp.accounts.roles import user_can_review
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.cases.models import Case, ReviewState
from webapp.reviews.models import Decision, Review
from webapp.scoring.models import Prediction, PredictionStatus


@transaction.atomic
def case_queue_refresh(*, case_id: int) -> Case:
    """Recompute one case's place in the reviewer queue (see `case_queue_refresh_many`)."""
    return case_queue_refresh_many(case_ids=[case_id])[0]


def case_queue_refresh_many(*, case_ids: Iterable[int]) -> list[Case]:
    """Recompute cases' places in the reviewer queue from their flagged predictions and reviews.

    A case is in the queue while any high-risk score of it has no review; a new flagged image
    puts a reviewed case back in. Three queries whatever the number of cases, so a worker
    settling a batch of scores refreshes all their cases at once. Call inside a transaction.
    """
    # The row locks order concurrent refreshes (two images scored at once, or a score and a
    # review) so the last writer always works from the other's committed rows; taken in id
    # order, so two workers refreshing overlapping cases cannot deadlock.
    cases = list(Case.objects.select_for_update().filter(pk__in=set(case_ids)).order_by("pk"))
    if not cases:
        raise Case.DoesNotExist(f"No case among {sorted(set(case_ids))}.")
    unreviewed = ~Exists(Review.objects.filter(prediction=OuterRef("pk")))
    summaries = {
        row["image__case_id"]: row
        for row in Prediction.objects.filter(
            image__case_id__in=[case.pk for case in cases],
            status=PredictionStatus.DONE,
            high_risk=True,
        )
        .values("image__case_id")
        .annotate(
            top=Max("probability"),
            latest=Max("finished_at"),
            unreviewed=Count("pk", filter=Q(unreviewed)),
        )
    }
    now = timezone.now()
    for case in cases:
        summary = summaries.get(case.pk)
        if summary is None:
            case.review_state = ReviewState.NOT_FLAGGED
            case.top_probability = case.flagged_at = None
        else:
            case.review_state = (
                ReviewState.UNREVIEWED if summary["unreviewed"] else ReviewState.REVIEWED
            )
            case.top_probability = summary["top"]
            case.flagged_at = summary["latest"]
        # bulk_update skips auto_now.
        case.updated_at = now
    Case.objects.bulk_update(cases, ["review_state", "top_probability", "flagged_at", "updated_at"])
    return cases


@transaction.atomic
def review_create(
    *,
    case: Case,
    prediction: Prediction,
    reviewer: User,
    decision: Decision,
    note: str = "",
) -> Review:
    """Record a reviewer's decision on a scored image of a case."""
    if not user_can_review(reviewer):
        raise PermissionDenied("Only reviewers and admins record reviews.")
    if prediction.image.case_id != case.pk:
        raise ValidationError({"prediction": "This score belongs to another case."})
    if prediction.status != PredictionStatus.DONE:
        raise ValidationError({"prediction": "Only a finished score can be reviewed."})
    review = Review(
        case=case, prediction=prediction, reviewer=reviewer, decision=decision, note=note
    )
    review.full_clean()
    review.save()
    audit_record(
        action=AuditAction.REVIEW_RECORDED,
        actor=reviewer,
        case=case,
        data={"review_id": review.pk, "prediction_id": prediction.pk, "decision": decision},
    )
    case_queue_refresh(case_id=case.pk)
    return review
