import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction

from tests.webapp.factories import PredictionFactory, ReviewerFactory, ReviewFactory
from webapp.accounts.models import User
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import Case, ReviewState
from webapp.cases.services import case_queue_refresh
from webapp.reviews.models import Decision, Review
from webapp.reviews.services import case_review_submit, review_create
from webapp.scoring.models import Prediction


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


def test_a_newer_review_supersedes_the_standing_one(flagged_case, flagged_prediction, reviewer):
    first = review_create(
        case=flagged_case, prediction=flagged_prediction, reviewer=reviewer, decision=Decision.AGREE
    )
    other = ReviewerFactory.create()
    second = review_create(
        case=flagged_case, prediction=flagged_prediction, reviewer=other, decision=Decision.REFER
    )
    first.refresh_from_db()
    assert (first.standing, first.superseded_by) == (False, second)
    assert first.superseded_at is not None
    assert second.standing
    earlier, later = AuditEvent.objects.filter(action=AuditAction.REVIEW_RECORDED).order_by("id")
    assert later.data["supersedes_review_id"] == first.pk
    assert "supersedes_review_id" not in earlier.data
    # The case stays reviewed: its flagged score still has one standing review.
    flagged_case.refresh_from_db()
    assert flagged_case.review_state == ReviewState.REVIEWED


def test_the_database_lets_one_review_per_score_stand(flagged_case, flagged_prediction, reviewer):
    ReviewFactory.create(prediction=flagged_prediction, case=flagged_case)
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(
            case=flagged_case,
            prediction=flagged_prediction,
            reviewer=reviewer,
            decision=Decision.AGREE,
        )


def test_a_case_submission_records_every_decision_or_none(reviewer):
    flagged = PredictionFactory.create(flagged=True)
    case = flagged.image.case
    pending = PredictionFactory.create(image__case=case)
    case_queue_refresh(case_id=case.pk)
    with pytest.raises(ValidationError, match="finished"):
        case_review_submit(
            case=case,
            reviewer=reviewer,
            decisions=[(flagged, Decision.AGREE), (pending, Decision.AGREE)],
        )
    assert not Review.objects.exists()
    reviews = case_review_submit(
        case=case, reviewer=reviewer, decisions=[(flagged, Decision.AGREE)], note="ok"
    )
    assert [review.note for review in reviews] == ["ok"]


def test_a_case_submission_needs_a_decision(flagged_case, reviewer):
    with pytest.raises(ValidationError, match="at least one"):
        case_review_submit(case=flagged_case, reviewer=reviewer, decisions=[])


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_submitting_at_once_leave_one_standing_review():
    prediction = PredictionFactory.create(flagged=True)
    case = case_queue_refresh(case_id=prediction.image.case_id)
    reviewers = [ReviewerFactory.create(), ReviewerFactory.create()]
    both_ready = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def submit(reviewer: User, decision: Decision) -> None:
        try:
            # Each thread has its own connection: the two transactions really overlap.
            both_ready.wait()
            case_review_submit(
                case=Case.objects.get(pk=case.pk),
                reviewer=reviewer,
                decisions=[(Prediction.objects.get(pk=prediction.pk), decision)],
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=submit, args=(reviewers[0], Decision.AGREE)),
        threading.Thread(target=submit, args=(reviewers[1], Decision.REFER)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reviews = list(Review.objects.filter(prediction=prediction).order_by("created_at", "id"))
    assert len(reviews) == 2
    older, newer = reviews
    assert newer.standing
    assert not older.standing
    assert older.superseded_by_id == newer.pk
    assert {review.reviewer_id for review in reviews} == {reviewer.pk for reviewer in reviewers}
    case.refresh_from_db()
    assert case.review_state == ReviewState.REVIEWED
