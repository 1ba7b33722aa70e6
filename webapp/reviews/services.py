from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.accounts.models import User
from webapp.accounts.roles import user_can_review
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.cases.models import Case, ReviewState
from webapp.cases.services import case_queue_refresh
from webapp.reviews.models import CaseClaim, Decision, Review
from webapp.reviews.selectors import QueueFilter, QueueOrdering, queue_unclaimed
from webapp.scoring.models import Prediction, PredictionStatus

# The queue states that wait for a reviewer's decision: only these are claimed.
AWAITING_STATES = (ReviewState.UNREVIEWED, ReviewState.NEEDS_IMAGE)

# How many cases "next" tries to take before it gives up: each try loses only to a reviewer
# who took that very case a moment before, so a few tries are plenty.
NEXT_CASE_ATTEMPTS = 5


def review_create(
    *,
    case: Case,
    prediction: Prediction,
    reviewer: User,
    decision: Decision,
    note: str = "",
) -> Review:
    """Record a reviewer's decision on a scored image of a case (see `case_review_submit`)."""
    (review,) = case_review_submit(
        case=case, reviewer=reviewer, decisions=[(prediction, decision)], note=note
    )
    return review


@transaction.atomic
def case_review_submit(
    *,
    case: Case,
    reviewer: User,
    decisions: Sequence[tuple[Prediction, Decision]],
    note: str = "",
) -> list[Review]:
    """Record a reviewer's decisions on scored images of one case, all or none.

    Each new review supersedes the standing review of its score, which stays in the history.
    The case's place in the queue is recomputed and the reviewer's claim on it released.
    """
    if not user_can_review(reviewer):
        raise PermissionDenied("Only reviewers and admins record reviews.")
    if not decisions:
        raise ValidationError("Choose a decision for at least one image.", code="required")
    for prediction, _ in decisions:
        if prediction.image.case_id != case.pk:
            raise ValidationError({"prediction": "This score belongs to another case."})
        if prediction.status != PredictionStatus.DONE:
            raise ValidationError({"prediction": "Only a finished score can be reviewed."})
    if len({prediction.pk for prediction, _ in decisions}) != len(decisions):
        raise ValidationError({"prediction": "Give each score one decision at a time."})
    # The case's row lock orders reviewers submitting on it at once: the later one reads the
    # earlier one's committed review and supersedes it, so one review per score stands. It is
    # the lock case_queue_refresh takes, so there is no second lock to take in another order.
    Case.objects.select_for_update().filter(pk=case.pk).first()
    now = timezone.now()
    reviews = [
        _review_record(
            case=case,
            prediction=prediction,
            reviewer=reviewer,
            decision=decision,
            note=note,
            now=now,
        )
        for prediction, decision in decisions
    ]
    case_queue_refresh(case_id=case.pk)
    case_claim_release(case=case, reviewer=reviewer)
    return reviews


def _review_record(
    *,
    case: Case,
    prediction: Prediction,
    reviewer: User,
    decision: Decision,
    note: str,
    now: dt.datetime,
) -> Review:
    """Insert one review in place of its score's standing one; the caller holds the case lock."""
    standing = (
        Review.objects.filter(prediction=prediction, superseded_at__isnull=True)
        .values_list("pk", flat=True)
        .first()
    )
    # Marked before the insert: the database lets one review per score stand at any moment.
    if standing is not None:
        Review.objects.filter(pk=standing).update(superseded_at=now)
    review = Review(
        case=case, prediction=prediction, reviewer=reviewer, decision=decision, note=note
    )
    review.full_clean()
    review.save()
    data: dict[str, object] = {
        "review_id": review.pk,
        "prediction_id": prediction.pk,
        "decision": decision,
    }
    if standing is not None:
        Review.objects.filter(pk=standing).update(superseded_by=review)
        data["supersedes_review_id"] = standing
    audit_record(action=AuditAction.REVIEW_RECORDED, actor=reviewer, case=case, data=data)
    return review


def case_claim(*, case: Case, reviewer: User) -> CaseClaim | None:
    """Take a case awaiting review for the reviewer, or renew their hold on it.

    Return the claim on the case after the attempt: the reviewer's own, or another reviewer's
    that has not expired (then nothing changed). None for a case that awaits no decision.
    Two reviewers racing for a case end with one claim between them. A reviewer holds one case
    at a time: holding this one lets go of any other they held.
    """
    if not user_can_review(reviewer):
        raise PermissionDenied("Only reviewers and admins take cases for review.")
    if case.review_state not in AWAITING_STATES:
        return None
    now = timezone.now()
    expires_at = now + dt.timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)
    claims = CaseClaim.objects.filter(case=case)
    with transaction.atomic():
        # Each step is one conditional statement, so whoever changes the row first wins and
        # the other's condition no longer holds when it is checked again after the wait.
        if claims.filter(reviewer=reviewer, expires_at__gt=now).update(expires_at=expires_at):
            return claims.select_related("reviewer").get()
        taken = claims.filter(expires_at__lte=now).update(
            reviewer=reviewer, claimed_at=now, expires_at=expires_at
        )
        if not taken:
            try:
                with transaction.atomic():
                    CaseClaim.objects.create(
                        case=case, reviewer=reviewer, claimed_at=now, expires_at=expires_at
                    )
                taken = 1
            except IntegrityError:
                # Someone else holds it: there was a live claim, or one was inserted just now.
                pass
        claim = claims.select_related("reviewer").get()
        if claim.reviewer_id == reviewer.pk:
            # A reviewer works on one case at a time: holding every case they opened until
            # each claim ran out would keep the others' "next" away from all of them.
            CaseClaim.objects.filter(reviewer=reviewer).exclude(case=case).delete()
        if taken:
            audit_record(
                action=AuditAction.CASE_CLAIMED,
                actor=reviewer,
                case=case,
                data={"expires_at": expires_at.isoformat()},
            )
    return claim


def case_claim_release(*, case: Case, reviewer: User) -> None:
    """Let go of the reviewer's claim on a case, if they hold one."""
    CaseClaim.objects.filter(case=case, reviewer=reviewer).delete()


def queue_next_claim(
    *,
    reviewer: User,
    state: QueueFilter = QueueFilter.UNREVIEWED,
    ordering: QueueOrdering = QueueOrdering.PROBABILITY_DESC,
    flagged_from: dt.date | None = None,
    flagged_to: dt.date | None = None,
) -> Case | None:
    """Take the first case of the reviewer's queue, as filtered and ordered, that awaits a
    decision and that no one holds; None when there is none."""
    for _ in range(NEXT_CASE_ATTEMPTS):
        case = queue_unclaimed(
            state=state, ordering=ordering, flagged_from=flagged_from, flagged_to=flagged_to
        ).first()
        if case is None:
            return None
        claim = case_claim(case=case, reviewer=reviewer)
        if claim is not None and claim.reviewer_id == reviewer.pk:
            return case
    return None
