import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from tests.webapp.factories import PredictionFactory, ReviewFactory
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import ReviewState
from webapp.cases.services import case_queue_refresh
from webapp.reviews.models import Decision
from webapp.reviews.services import review_create


def test_it_records_a_review_and_takes_the_case_out_of_the_queue(
    flagged_case, flagged_prediction, reviewer
):
    review = review_create(
        case=flagged_case,
        prediction=flagged_prediction,
        reviewer=reviewer,
        decision=Decision.REFER,
        note="dermatology",
    )
    flagged_case.refresh_from_db()
    assert flagged_case.review_state == ReviewState.REVIEWED
    assert review.decision == Decision.REFER
    assert (
        AuditEvent.objects.filter(case=flagged_case, action=AuditAction.REVIEW_RECORDED).count()
        == 1
    )


def test_it_puts_a_reviewed_case_back_when_a_new_image_is_flagged(
    flagged_case, flagged_prediction, reviewer
):
    review_create(
        case=flagged_case, prediction=flagged_prediction, reviewer=reviewer, decision=Decision.AGREE
    )
    PredictionFactory.create(image__case=flagged_case, flagged=True, probability=0.95)
    case = case_queue_refresh(case_id=flagged_case.pk)
    assert case.review_state == ReviewState.UNREVIEWED
    assert case.top_probability == pytest.approx(0.95)


def test_it_refuses_reviews_from_clinicians(flagged_case, flagged_prediction, clinician):
    with pytest.raises(PermissionDenied):
        review_create(
            case=flagged_case,
            prediction=flagged_prediction,
            reviewer=clinician,
            decision=Decision.AGREE,
        )


def test_it_refuses_a_score_of_another_case(flagged_case, reviewer):
    other = PredictionFactory.create(flagged=True)
    with pytest.raises(ValidationError, match="another case"):
        review_create(
            case=flagged_case, prediction=other, reviewer=reviewer, decision=Decision.AGREE
        )


def test_it_refuses_a_score_that_is_not_finished(flagged_case, reviewer):
    pending = PredictionFactory.create(image__case=flagged_case)
    with pytest.raises(ValidationError, match="finished"):
        review_create(
            case=flagged_case, prediction=pending, reviewer=reviewer, decision=Decision.AGREE
        )


@pytest.mark.django_db
def test_it_keeps_unflagged_cases_out_of_the_queue():
    prediction = PredictionFactory.create(done=True)
    case = case_queue_refresh(case_id=prediction.image.case_id)
    assert case.review_state == ReviewState.NOT_FLAGGED
    assert case.top_probability is None


@pytest.mark.django_db
def test_it_counts_a_case_reviewed_only_when_every_flag_is_reviewed():
    review = ReviewFactory.create()
    case = review.case
    PredictionFactory.create(image__case=case, flagged=True)
    assert case_queue_refresh(case_id=case.pk).review_state == ReviewState.UNREVIEWED
