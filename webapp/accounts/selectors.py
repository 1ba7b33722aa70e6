from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from webapp.audit.models import AuditAction, AuditEvent


def login_throttled(*, username: str, ip_address: str | None) -> bool:
    """True while recent failed sign-ins for this username, or from this address, hit the limit.

    Counted from the audit history's failed-login events, so the throttle holds across every
    web process and survives restarts without a store of its own.
    """
    since = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    recent = AuditEvent.objects.filter(action=AuditAction.USER_LOGIN_FAILED, created_at__gte=since)
    if username:
        by_user = recent.filter(data__username=username.strip().lower())
        if by_user.count() >= settings.LOGIN_FAILURE_LIMIT:
            return True
    if ip_address:
        by_address = recent.filter(data__ip=ip_address)
        if by_address.count() >= settings.LOGIN_IP_FAILURE_LIMIT:
            return True
    return False
