from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from webapp.audit.models import AuditAction, AuditEvent


def username_for_audit(raw: object) -> str:
    """The form a typed username is recorded and counted under in the audit history.

    Lower-cased and trimmed so "Alice " and "alice" share one failure count; NUL characters are
    dropped because PostgreSQL's JSON type cannot hold them (a probing client sends them).
    """
    return str(raw or "").replace("\x00", "")[:150].strip().lower()


def login_throttled(*, username: str, ip_address: str | None) -> bool:
    """True while recent failed sign-ins for this username, or from this address, hit the limit.

    Counted from the audit history's failed-login events, so the throttle holds across every
    web process and survives restarts without a store of its own.
    """
    since = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    recent = AuditEvent.objects.filter(action=AuditAction.USER_LOGIN_FAILED, created_at__gte=since)
    if username:
        by_user = recent.filter(data__username=username_for_audit(username))
        if by_user.count() >= settings.LOGIN_FAILURE_LIMIT:
            return True
    if ip_address:
        by_address = recent.filter(data__ip=ip_address)
        if by_address.count() >= settings.LOGIN_IP_FAILURE_LIMIT:
            return True
    return False
