from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from webapp.audit.models import AuditEvent

if TYPE_CHECKING:
    from webapp.cases.models import Case


def audit_event_list(*, case: Case) -> QuerySet[AuditEvent]:
    """Return a case's history, oldest first, as its timeline shows it."""
    return AuditEvent.objects.filter(case=case).select_related("actor").order_by("created_at", "id")
