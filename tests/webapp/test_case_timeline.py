from __future__ import annotations

import pytest
from django.test import Client

from tests.webapp import factories
from webapp.audit.models import AuditAction
from webapp.audit.selectors import TIMELINE_LENGTH
from webapp.audit.services import audit_record

pytestmark = pytest.mark.django_db


def test_the_case_page_shows_only_the_newest_part_of_a_long_history(client: Client) -> None:
    case = factories.CaseFactory.create()
    client.force_login(case.created_by)
    for _ in range(TIMELINE_LENGTH + 5):
        audit_record(action=AuditAction.CASE_VIEWED, actor=case.created_by, case=case, data={})

    response = client.get(f"/cases/{case.pk}/")

    timeline = list(response.context["timeline"])
    assert len(timeline) == TIMELINE_LENGTH
    assert timeline[0].created_at >= timeline[-1].created_at
    assert f"Newest {TIMELINE_LENGTH} events shown" in response.content.decode()
