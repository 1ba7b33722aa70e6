from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, Max, OuterRef

from webapp.accounts.models import User
from webapp.accounts.roles import user_can_review
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.cases.models import Case, ReviewState
from webapp.reviews.models import Decision, Review
from webapp.scoring.models import Prediction, PredictionStatus


@transaction.atomic
def case_queue_refresh(*, case_id: int) -> Case:
    """Recompute a case's place in the reviewer queue from its flagged predictions and reviews.

    A case is in the queue while any high-risk score of it has no review; a new flagged image
    puts a reviewed case back in.
    """
    # The row lock orders concurrent refreshes (two images scored at once, or a score and a
    # review) so the last writer always works from the other's committed rows.
    case = Case.objects.select_for_update().get(pk=case_id)
    flagged = Prediction.objects.filter(
        image__case_id=case_id, status=PredictionStatus.DONE, high_risk=True
    )
    summary = flagged.aggregate(top=Max("probability"), latest=Max("finished_at"))
    if summary["top"] is None:
        state = ReviewState.NOT_FLAGGED
    elif flagged.filter(~Exists(Review.objects.filter(prediction=OuterRef("pk")))).exists():
        state = ReviewState.UNREVIEWED
    else:
        state = ReviewState.REVIEWED
    case.review_state = state
    case.top_probability = summary["top"]
    case.flagged_at = summary["latest"]
    case.save(update_fields=["review_state", "top_probability", "flagged_at", "updated_at"])
    return case


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
