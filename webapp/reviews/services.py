from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from webapp.accounts.models import User
from webapp.accounts.roles import user_can_review
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.cases.models import Case
from webapp.cases.services import case_queue_refresh
from webapp.reviews.models import Decision, Review
from webapp.scoring.models import Prediction, PredictionStatus


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
