import datetime as dt

import pytest
from django.utils import timezone

from tests.webapp.factories import CaseFactory, PredictionFactory, ReviewFactory
from webapp.cases.models import Case
from webapp.cases.selectors import case_get, case_list
from webapp.cases.services import case_queue_refresh
from webapp.casework.selectors import case_scoring_in_progress
from webapp.reviews.selectors import QueueFilter, QueueOrdering, queue_list


def flagged(probability: float, days_ago: int = 0) -> Case:
    case = CaseFactory.create()
    finished = timezone.now() - dt.timedelta(days=days_ago)
    PredictionFactory.create(
        image__case=case, flagged=True, probability=probability, finished_at=finished
    )
    return case_queue_refresh(case_id=case.pk)


def test_it_lists_only_a_clinicians_own_cases(clinician, other_clinician):
    mine = CaseFactory.create(created_by=clinician)
    CaseFactory.create(created_by=other_clinician)
    assert list(case_list(user=clinician)) == [mine]


def test_it_lists_every_case_for_reviewers_and_admins(clinician, reviewer, admin_user):
    CaseFactory.create_batch(2)
    assert case_list(user=reviewer).count() == 2
    assert case_list(user=admin_user).count() == 2


def test_it_hides_another_clinicians_case(clinician, other_clinician):
    theirs = CaseFactory.create(created_by=other_clinician)
    with pytest.raises(Case.DoesNotExist):
        case_get(user=clinician, case_id=theirs.pk)


@pytest.mark.django_db
def test_it_knows_when_scoring_is_in_progress():
    prediction = PredictionFactory.create()
    assert case_scoring_in_progress(case=prediction.image.case) is True
    PredictionFactory.create(image=prediction.image, done=True)
    prediction.status = "failed"
    prediction.save()
    assert case_scoring_in_progress(case=prediction.image.case) is False


@pytest.mark.django_db
def test_the_queue_orders_by_probability_or_flag_date():
    old_high = flagged(0.95, days_ago=3)
    new_low = flagged(0.6, days_ago=0)
    assert list(queue_list(ordering=QueueOrdering.PROBABILITY_DESC)) == [old_high, new_low]
    assert list(queue_list(ordering=QueueOrdering.PROBABILITY_ASC)) == [new_low, old_high]
    assert list(queue_list(ordering=QueueOrdering.FLAGGED_DESC)) == [new_low, old_high]


@pytest.mark.django_db
def test_the_queue_filters_by_flag_date():
    old = flagged(0.9, days_ago=10)
    recent = flagged(0.9, days_ago=1)
    since = (timezone.now() - dt.timedelta(days=5)).date()
    assert list(queue_list(flagged_from=since)) == [recent]
    assert list(queue_list(flagged_to=since)) == [old]


@pytest.mark.django_db
def test_the_queue_filters_by_review_state():
    waiting = flagged(0.9)
    review = ReviewFactory.create()
    reviewed = case_queue_refresh(case_id=review.case_id)
    CaseFactory.create()  # never flagged: in no view of the queue
    assert list(queue_list(state=QueueFilter.UNREVIEWED)) == [waiting]
    assert list(queue_list(state=QueueFilter.REVIEWED)) == [reviewed]
    assert set(queue_list(state=QueueFilter.ALL)) == {waiting, reviewed}


def gated(days_ago: int = 0) -> Case:
    case = CaseFactory.create()
    finished = timezone.now() - dt.timedelta(days=days_ago)
    PredictionFactory.create(image__case=case, gated=True, finished_at=finished)
    return case_queue_refresh(case_id=case.pk)


@pytest.mark.django_db
def test_cases_needing_a_better_image_have_a_bucket_of_their_own():
    waiting = flagged(0.9)
    needs_image = gated()
    assert list(queue_list(state=QueueFilter.UNREVIEWED)) == [waiting]
    (listed,) = queue_list(state=QueueFilter.NEEDS_IMAGE)
    assert listed == needs_image
    # The row names the image that needs a better one, and why (queue_list's annotations).
    assert listed.gate_reason == "not_dermoscopic"  # type: ignore[attr-defined]
    assert listed.gated_image_id == needs_image.images.get().pk  # type: ignore[attr-defined]
    assert set(queue_list(state=QueueFilter.ALL)) == {waiting, needs_image}


@pytest.mark.django_db
def test_cases_needing_a_better_image_sort_by_flag_date():
    older, newer = gated(days_ago=3), gated(days_ago=1)
    assert list(queue_list(state=QueueFilter.NEEDS_IMAGE, ordering=QueueOrdering.FLAGGED_DESC)) == [
        newer,
        older,
    ]
    assert list(queue_list(state=QueueFilter.NEEDS_IMAGE, ordering=QueueOrdering.FLAGGED_ASC)) == [
        older,
        newer,
    ]
