from __future__ import annotations

from django.db.models import Model, QuerySet

from webapp.audit.models import AuditEvent

# Every view of a case is an event, so a busy case's history grows without bound; its page
# shows the most recent part (the admin and the database keep all of it).
TIMELINE_LENGTH = 50


def audit_event_list(*, case: Model, limit: int | None = None) -> QuerySet[AuditEvent]:
    """Return a case's history, newest first, at most `limit` events when given."""
    events = (
        AuditEvent.objects.filter(case_id=case.pk)
        .select_related("actor")
        .order_by("-created_at", "-id")
    )
    return events if limit is None else events[:limit]
