from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from ipware import get_client_ip

from webapp.accounts.models import ApiToken, Role, User
from webapp.accounts.roles import role_is_staff
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address, for the sign-in throttle and the audit history.

    Directly served, that is the peer address. Behind `TRUSTED_PROXY_COUNT` reverse proxies,
    each appending the address it saw to X-Forwarded-For, it is the address the outermost proxy
    saw: that many entries from the right. Entries further left came from the client and are
    not believed, or anyone could spread failed sign-ins over invented addresses; and without
    this, every client would share the proxy's address and one guesser could lock out all.
    """
    if request is None:
        return None
    peer = request.META.get("REMOTE_ADDR") or None
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies == 0:
        return peer
    # ipware counts the proxies listed in the header after the client; the last proxy is
    # the peer and lists no one after itself.
    address, _ = get_client_ip(
        request,
        proxy_order="left-most",
        proxy_count=proxies - 1,
        request_header_order=["HTTP_X_FORWARDED_FOR"],
        strict=False,
    )
    # None: not through every trusted proxy (a misconfiguration, or a request from inside).
    return address or peer


def user_role_assign(*, user: User, role: Role) -> None:
    """Give an unsaved or changing user a role and what follows from it; the caller saves.

    Admins sign in to the Django admin (is_staff); their permissions there follow from the
    role itself (webapp.accounts.backends.RoleBackend). Superusers keep their access.
    """
    user.role = role
    user.is_staff = role_is_staff(role) or user.is_superuser


@transaction.atomic
def user_create(*, username: str, password: str, role: Role, email: str = "") -> User:
    """Create a user with a role; admins also get access to the Django admin."""
    user = User(username=username, email=email)
    user_role_assign(user=user, role=role)
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


@transaction.atomic
def user_set_demo_account(*, username: str, password: str, role: Role) -> User:
    """Create the demo account, or reset its role and password if it already exists."""
    user = User.objects.select_for_update().filter(username=username).first()
    if user is None:
        return user_create(username=username, password=password, role=role)
    user_role_assign(user=user, role=role)
    user.is_active = True
    user.set_password(password)
    user.save(update_fields=["role", "is_staff", "is_active", "password"])
    return user


@transaction.atomic
def api_token_issue(*, user: User, request: HttpRequest | None) -> tuple[ApiToken, str]:
    """Issue a new API token and return it with its key, which is not stored and not shown again.

    Each call issues another token, so that each integration can hold its own; the user's
    expired ones are deleted on the way.
    """
    now = timezone.now()
    ApiToken.objects.filter(user=user, expires_at__lte=now).delete()
    key = secrets.token_hex(20)
    token = ApiToken.objects.create(
        user=user,
        digest=ApiToken.digest_of(key),
        created_at=now,
        expires_at=now + timedelta(days=settings.API_TOKEN_TTL_DAYS),
    )
    audit_record(
        action=AuditAction.USER_LOGGED_IN,
        actor=user,
        case=None,
        data={"ip": client_ip(request), "via": "api-token"},
    )
    return token, key


@transaction.atomic
def api_token_revoke(*, token: ApiToken, request: HttpRequest | None) -> None:
    """Delete one API token so that it authenticates nothing more."""
    token.delete()
    audit_record(
        action=AuditAction.TOKEN_REVOKED,
        actor=token.user,
        case=None,
        data={"ip": client_ip(request), "tokens": 1},
    )


@transaction.atomic
def api_tokens_revoke(*, user: User, reason: str, request: HttpRequest | None = None) -> int:
    """Delete all the user's API tokens; how many there were."""
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    if deleted:
        audit_record(
            action=AuditAction.TOKEN_REVOKED,
            actor=user,
            case=None,
            data={"ip": client_ip(request), "tokens": deleted, "reason": reason},
        )
    return deleted
