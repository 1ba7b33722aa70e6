"""Claims: a reviewer who opens a queued case holds it for a while; "next" skips held cases."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from tests.webapp.conftest import login
from tests.webapp.factories import CaseFactory, PredictionFactory, ReviewerFactory
from webapp.accounts.models import User
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import Case
from webapp.cases.services import case_queue_refresh
from webapp.reviews.models import CaseClaim, Decision
from webapp.reviews.selectors import QueueFilter, QueueOrdering
from webapp.reviews.services import case_claim, case_review_submit, queue_next_claim


def queued_case(probability: float = 0.9) -> Case:
    case = CaseFactory.create()
    PredictionFactory.create(image__case=case, flagged=True, probability=probability)
    return case_queue_refresh(case_id=case.pk)


def expire(case: Case) -> None:
    CaseClaim.objects.filter(case=case).update(expires_at=timezone.now() - dt.timedelta(1))


def test_opening_a_case_takes_it_for_the_configured_minutes(reviewer, settings):
    settings.REVIEW_CLAIM_MINUTES = 7
    case = queued_case()
    before = timezone.now()
    claim = case_claim(case=case, reviewer=reviewer)
    assert claim is not None
    assert claim.reviewer == reviewer
    assert before + dt.timedelta(minutes=7) <= claim.expires_at
    assert claim.expires_at <= timezone.now() + dt.timedelta(minutes=7)
    assert AuditEvent.objects.filter(case=case, action=AuditAction.CASE_CLAIMED).count() == 1


def test_opening_it_again_renews_the_claim_without_a_new_event(reviewer):
    case = queued_case()
    first = case_claim(case=case, reviewer=reviewer)
    second = case_claim(case=case, reviewer=reviewer)
    assert first is not None
    assert second is not None
    assert second.expires_at >= first.expires_at
    assert second.claimed_at == first.claimed_at
    assert AuditEvent.objects.filter(case=case, action=AuditAction.CASE_CLAIMED).count() == 1


def test_another_reviewer_cannot_take_a_live_claim(reviewer):
    case = queued_case()
    case_claim(case=case, reviewer=reviewer)
    claim = case_claim(case=case, reviewer=ReviewerFactory.create())
    assert claim is not None
    assert claim.reviewer == reviewer


def test_an_expired_claim_goes_to_whoever_opens_the_case_next(reviewer):
    case = queued_case()
    case_claim(case=case, reviewer=reviewer)
    expire(case)
    other = ReviewerFactory.create()
    claim = case_claim(case=case, reviewer=other)
    assert claim is not None
    assert claim.reviewer == other
    assert CaseClaim.objects.count() == 1


def test_a_case_that_awaits_no_decision_is_not_claimed(reviewer):
    case = CaseFactory.create()
    PredictionFactory.create(image__case=case, done=True)
    assert case_claim(case=case_queue_refresh(case_id=case.pk), reviewer=reviewer) is None
    assert not CaseClaim.objects.exists()


def test_clinicians_do_not_claim_cases(clinician):
    with pytest.raises(PermissionDenied):
        case_claim(case=queued_case(), reviewer=clinician)


def test_taking_a_case_lets_go_of_the_reviewers_other_cases(reviewer):
    first, second, others = queued_case(), queued_case(), queued_case()
    other = ReviewerFactory.create()
    case_claim(case=others, reviewer=other)
    case_claim(case=first, reviewer=reviewer)
    case_claim(case=second, reviewer=reviewer)
    # One case at a time: the first is free again for anyone's "next"; the other reviewer's
    # claim is not the reviewer's to release.
    assert dict(CaseClaim.objects.values_list("case_id", "reviewer_id")) == {
        second.pk: reviewer.pk,
        others.pk: other.pk,
    }
    # Opening a case someone else holds takes nothing, so lets go of nothing.
    held = case_claim(case=others, reviewer=reviewer)
    assert held is not None
    assert held.reviewer == other
    assert CaseClaim.objects.get(reviewer=reviewer).case == second


def test_submitting_the_review_releases_the_claim(reviewer):
    case = queued_case()
    case_claim(case=case, reviewer=reviewer)
    prediction = case.images.get().predictions.get()
    case_review_submit(case=case, reviewer=reviewer, decisions=[(prediction, Decision.AGREE)])
    assert not CaseClaim.objects.exists()


def test_next_takes_the_first_case_no_one_holds_in_queue_order(reviewer):
    top, middle, low = queued_case(0.99), queued_case(0.8), queued_case(0.6)
    other = ReviewerFactory.create()
    case_claim(case=top, reviewer=other)
    assert queue_next_claim(reviewer=reviewer) == middle
    # The reviewer now holds it: moving on without reviewing it leads further down the queue,
    # and lets go of it, so past the last case "next" comes round to it again.
    assert queue_next_claim(reviewer=reviewer) == low
    assert queue_next_claim(reviewer=reviewer) == middle
    assert queue_next_claim(reviewer=reviewer) == low
    # In another order, the same rule: the lowest score no one holds comes first.
    expire(top)
    oldest_first = queue_next_claim(
        reviewer=ReviewerFactory.create(), ordering=QueueOrdering.PROBABILITY_ASC
    )
    assert oldest_first == middle
    assert queue_next_claim(reviewer=reviewer, state=QueueFilter.REVIEWED) is None


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_racing_for_a_case_get_one_claim():
    case = queued_case()
    reviewers = [ReviewerFactory.create(), ReviewerFactory.create()]
    both_ready = threading.Barrier(2, timeout=10)
    holders: dict[int, int | None] = {}

    def open_case(reviewer: User) -> None:
        try:
            both_ready.wait()
            claim = case_claim(case=Case.objects.get(pk=case.pk), reviewer=reviewer)
            holders[reviewer.pk] = None if claim is None else claim.reviewer_id
        finally:
            connection.close()

    threads = [threading.Thread(target=open_case, args=(reviewer,)) for reviewer in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Both were told the same holder, and the row agrees.
    claim = CaseClaim.objects.get(case=case)
    assert holders == {reviewer.pk: claim.reviewer_id for reviewer in reviewers}
    assert AuditEvent.objects.filter(case=case, action=AuditAction.CASE_CLAIMED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_racing_for_an_expired_claim_get_one_claim():
    case = queued_case()
    case_claim(case=case, reviewer=ReviewerFactory.create())
    expire(case)
    reviewers = [ReviewerFactory.create(), ReviewerFactory.create()]
    both_ready = threading.Barrier(2, timeout=10)
    holders: dict[int, int | None] = {}

    def open_case(reviewer: User) -> None:
        try:
            both_ready.wait()
            claim = case_claim(case=Case.objects.get(pk=case.pk), reviewer=reviewer)
            holders[reviewer.pk] = None if claim is None else claim.reviewer_id
        finally:
            connection.close()

    threads = [threading.Thread(target=open_case, args=(reviewer,)) for reviewer in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claim = CaseClaim.objects.get(case=case)
    assert claim.reviewer_id in {reviewer.pk for reviewer in reviewers}
    assert holders == {reviewer.pk: claim.reviewer_id for reviewer in reviewers}


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_asking_for_next_at_once_are_sent_to_different_cases():
    cases = [queued_case(0.99), queued_case(0.9)]
    reviewers = [ReviewerFactory.create(), ReviewerFactory.create()]
    both_ready = threading.Barrier(2, timeout=10)
    taken: dict[int, int | None] = {}

    def next_case(reviewer: User) -> None:
        try:
            both_ready.wait()
            case = queue_next_claim(reviewer=reviewer)
            taken[reviewer.pk] = None if case is None else case.pk
        finally:
            connection.close()

    threads = [threading.Thread(target=next_case, args=(reviewer,)) for reviewer in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken.values()) == sorted(case.pk for case in cases)  # type: ignore[type-var]


# The pages.


def test_a_reviewer_opening_a_case_holds_it_and_others_see_it_taken(reviewer):
    case = queued_case()
    mine = login(reviewer).get(reverse("cases:detail", args=[case.pk]))
    assert "You have this case open until" in mine.text
    other = login(ReviewerFactory.create())
    theirs = other.get(reverse("cases:detail", args=[case.pk]))
    assert f"Taken by {reviewer.username} until" in theirs.text
    queue = other.get(reverse("reviews:queue"))
    assert f'data-taken-by="{reviewer.username}"' in queue.text
    assert f"Taken by {reviewer.username} until" in queue.text
    assert CaseClaim.objects.get(case=case).reviewer == reviewer


def test_a_clinician_opening_a_case_takes_nothing(clinician):
    case = queued_case()
    Case.objects.filter(pk=case.pk).update(created_by=clinician)
    page = login(clinician).get(reverse("cases:detail", args=[case.pk]))
    assert page.status_code == 200
    assert not CaseClaim.objects.exists()
    assert 'data-testid="case-claim"' not in page.text


def test_next_opens_the_first_free_case_carrying_the_queue(reviewer):
    top, low = queued_case(0.99), queued_case(0.6)
    case_claim(case=top, reviewer=ReviewerFactory.create())
    client = login(reviewer)
    response = client.get(reverse("reviews:next"), {"ordering": "-flagged"})
    assert response.status_code == 302
    assert (
        response["Location"]
        == reverse("cases:detail", args=[low.pk]) + "?queue=ordering%3D-flagged"
    )
    page = client.get(response["Location"])
    # The case page carries the queue on to "Save and next" and "next case".
    assert 'name="queue" value="ordering=-flagged"' in page.text
    assert f'href="{reverse("reviews:next")}?ordering=-flagged"' in page.text


def test_next_goes_back_to_the_queue_when_no_case_is_left(reviewer):
    client = login(reviewer)
    response = client.get(reverse("reviews:next"), {"state": "needs_image"}, follow=True)
    assert response.redirect_chain == [(reverse("reviews:queue") + "?state=needs_image", 302)]
    assert "No case is left to review in this queue" in response.text


def test_next_with_refused_filters_shows_them_refused_on_the_queue(reviewer):
    response = login(reviewer).get(reverse("reviews:next"), {"state": "everything"}, follow=True)
    assert response.status_code == 400
    assert 'data-testid="queue-filter-errors"' in response.text


def test_save_and_next_records_the_review_and_opens_the_next_free_case(reviewer):
    first, second = queued_case(0.99), queued_case(0.7)
    client = login(reviewer)
    client.get(reverse("cases:detail", args=[first.pk]))
    prediction = first.images.get().predictions.get()
    response = client.post(
        reverse("cases:review", args=[first.pk]),
        {f"decision_{prediction.pk}": "agree", "then": "next", "queue": "ordering=-flagged"},
        follow=True,
    )
    assert response.redirect_chain == [
        (reverse("reviews:next") + "?ordering=-flagged", 302),
        (reverse("cases:detail", args=[second.pk]) + "?queue=ordering%3D-flagged", 302),
    ]
    assert "Review recorded." in response.text
    assert not CaseClaim.objects.filter(case=first).exists()
    assert CaseClaim.objects.get(case=second).reviewer == reviewer


def test_a_mangled_queue_parameter_falls_back_to_the_default_queue(reviewer):
    case = queued_case()
    page = login(reviewer).get(
        reverse("cases:detail", args=[case.pk]), {"queue": "state=nonsense&page=%%%"}
    )
    assert page.status_code == 200
    assert 'name="queue" value=""' in page.text
