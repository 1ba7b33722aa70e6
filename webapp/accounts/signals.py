"""Sign-ins, sign-outs and failed sign-ins go into the audit history."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from webapp.accounts.selectors import username_for_audit
from webapp.accounts.services import client_ip
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record


@receiver(user_logged_in)
def login_recorded(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit_record(
        action=AuditAction.USER_LOGGED_IN,
        actor=user,
        case=None,
        data={"ip": client_ip(request), "via": "browser"},
    )


@receiver(user_logged_out)
def logout_recorded(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:  # signing out without a session
        return
    audit_record(
        action=AuditAction.USER_LOGGED_OUT, actor=user, case=None, data={"ip": client_ip(request)}
    )


@receiver(user_login_failed)
def login_failure_recorded(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already masked the password in `credentials`; only the username is kept.
    username = username_for_audit(credentials.get("username"))
    audit_record(
        action=AuditAction.USER_LOGIN_FAILED,
        actor=None,
        case=None,
        data={"username": username, "ip": client_ip(request)},
    )
