from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from tests.webapp import factories
from webapp.accounts.models import User
from webapp.audit.models import AuditAction, AuditEvent
from webapp.audit.selectors import TIMELINE_LENGTH, audit_timeline
from webapp.audit.services import audit_record
from webapp.cases.models import Case

pytestmark = pytest.mark.django_db

MORNING = dt.datetime(2024, 12, 2, 10, 2, tzinfo=dt.UTC)


@contextmanager
def at(moment: dt.datetime) -> Iterator[None]:
    """Record events as if it were `moment` (auto_now_add reads timezone.now)."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def record(case: Case, action: AuditAction, actor: User | None, moment: dt.datetime) -> None:
    with at(moment):
        audit_record(action=action, actor=actor, case=case, data={})


def test_the_case_page_shows_only_the_newest_part_of_a_long_history(client: Client) -> None:
    case = factories.CaseFactory.create()
    client.force_login(case.created_by)
    # Uploads never fold together, so each is an entry of its own.
    for _ in range(TIMELINE_LENGTH + 5):
        audit_record(action=AuditAction.IMAGE_UPLOADED, actor=case.created_by, case=case, data={})

    response = client.get(f"/cases/{case.pk}/")

    timeline = list(response.context["timeline"])
    assert len(timeline) == TIMELINE_LENGTH
    assert timeline[0].event.created_at >= timeline[-1].event.created_at
    assert f"Newest {TIMELINE_LENGTH} entries shown" in response.content.decode()


def test_it_folds_a_run_of_views_by_one_person_into_one_entry(client: Client) -> None:
    alice = factories.ClinicianFactory.create(username="alice")
    case = factories.CaseFactory.create(created_by=alice)
    record(case, AuditAction.IMAGE_UPLOADED, alice, MORNING - dt.timedelta(minutes=5))
    for minute in range(14):
        action = AuditAction.IMAGE_VIEWED if minute % 3 else AuditAction.CASE_VIEWED
        record(case, action, alice, MORNING + dt.timedelta(minutes=minute * 38 / 13))
    record(case, AuditAction.PREDICTION_SCORED, None, MORNING + dt.timedelta(minutes=45))

    timeline = audit_timeline(case=case)

    assert [(entry.event.action, entry.count) for entry in timeline.entries] == [
        (AuditAction.PREDICTION_SCORED, 1),
        (AuditAction.IMAGE_VIEWED, 14),
        (AuditAction.IMAGE_UPLOADED, 1),
    ]
    views = timeline.entries[1]
    assert (views.first_at, views.last_at) == (MORNING, MORNING + dt.timedelta(minutes=38))
    assert not timeline.truncated
    # The history itself keeps every event.
    assert AuditEvent.objects.filter(case=case).count() == 16

    client.force_login(alice)
    with timezone.override(dt.UTC):
        page = client.get(f"/cases/{case.pk}/timeline/").content.decode()
    assert "Viewed 14 times by alice, " in page
    assert ">2 Dec 10:02</time>\u2013<time" in page
    assert ">10:40</time>" in page
    assert "Image uploaded" in page
    assert "Image scored" in page


def test_views_by_different_people_or_on_different_days_stay_apart() -> None:
    alice = factories.ClinicianFactory.create()
    bob = factories.ReviewerFactory.create()
    case = factories.CaseFactory.create(created_by=alice)
    record(case, AuditAction.CASE_VIEWED, alice, MORNING)
    record(case, AuditAction.CASE_VIEWED, alice, MORNING + dt.timedelta(minutes=1))
    record(case, AuditAction.CASE_VIEWED, bob, MORNING + dt.timedelta(minutes=2))
    record(case, AuditAction.CASE_VIEWED, bob, MORNING + dt.timedelta(days=1))

    with timezone.override(dt.UTC):
        timeline = audit_timeline(case=case)

    assert [(entry.event.actor, entry.count) for entry in timeline.entries] == [
        (bob, 1),
        (bob, 1),
        (alice, 2),
    ]


def test_a_run_of_views_broken_by_a_review_is_two_entries() -> None:
    reviewer = factories.ReviewerFactory.create()
    case = factories.CaseFactory.create()
    for minute in range(3):
        record(case, AuditAction.CASE_VIEWED, reviewer, MORNING + dt.timedelta(minutes=minute))
    record(case, AuditAction.REVIEW_RECORDED, reviewer, MORNING + dt.timedelta(minutes=3))
    for minute in range(4, 6):
        record(case, AuditAction.CASE_VIEWED, reviewer, MORNING + dt.timedelta(minutes=minute))

    timeline = audit_timeline(case=case)

    assert [(entry.event.action, entry.count) for entry in timeline.entries] == [
        (AuditAction.CASE_VIEWED, 2),
        (AuditAction.REVIEW_RECORDED, 1),
        (AuditAction.CASE_VIEWED, 3),
    ]


def test_a_long_run_of_views_still_leaves_the_upload_before_it_on_the_page(
    client: Client,
) -> None:
    case = factories.CaseFactory.create()
    record(case, AuditAction.IMAGE_UPLOADED, case.created_by, MORNING)
    for second in range(1, 2 * TIMELINE_LENGTH):
        record(
            case, AuditAction.CASE_VIEWED, case.created_by, MORNING + dt.timedelta(seconds=second)
        )

    client.force_login(case.created_by)
    response = client.get(f"/cases/{case.pk}/")

    # The page's own view, today, is an entry of its own.
    assert [(entry.event.action, entry.count) for entry in response.context["timeline"]] == [
        (AuditAction.CASE_VIEWED, 1),
        (AuditAction.CASE_VIEWED, 2 * TIMELINE_LENGTH - 1),
        (AuditAction.IMAGE_UPLOADED, 1),
    ]
