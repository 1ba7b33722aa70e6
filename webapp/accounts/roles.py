"""Role checks shared by views, APIs and selectors, so each rule is written once."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from rest_framework.request import Request

from webapp.accounts.models import Role, User

AnyUser = User | AnonymousUser


def request_user(request: HttpRequest | Request) -> User:
    """The signed-in user of a request that reached a page or an API view."""
    # LoginRequiredMiddleware (pages) and IsAuthenticated (the API) refuse anyone else first.
    assert isinstance(request.user, User)
    return request.user


def user_role(user: AnyUser) -> Role | None:
    """Return the user's effective role; superusers are always admins."""
    if not user.is_authenticated or not user.is_active:
        return None
    assert isinstance(user, User)
    if user.is_superuser:
        return Role.ADMIN
    return Role(user.role)


# What each role may do in the Django admin, granted by webapp.accounts.backends.RoleBackend.
# Admins manage accounts and roles and may read everything else: cases, scores, reviews and
# the history change only through the app's services, which keep the audit trail. Accounts
# are deactivated rather than deleted, since the history refers to them.
ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.CLINICIAN: frozenset(),
    Role.REVIEWER: frozenset(),
    Role.ADMIN: frozenset(
        {
            "accounts.add_user",
            "accounts.change_user",
            "accounts.view_user",
            "audit.view_auditevent",
            # Lifting a sign-in lockout early is deleting its access attempt.
            "axes.view_accessattempt",
            "axes.delete_accessattempt",
            "cases.view_case",
            "cases.view_image",
            "reviews.view_review",
            "scoring.view_prediction",
        }
    ),
}


def role_permissions(user: AnyUser) -> frozenset[str]:
    """The Django permissions ("app.codename") that follow from the user's role."""
    role = user_role(user)
    return ROLE_PERMISSIONS[role] if role is not None else frozenset()


def role_is_staff(role: Role) -> bool:
    """Whether the role signs in to the Django admin."""
    return role == Role.ADMIN


def user_can_review(user: AnyUser) -> bool:
    """Reviewers and admins see every case and the flagged queue, and record decisions."""
    return user_role(user) in (Role.REVIEWER, Role.ADMIN)


def user_can_upload(user: AnyUser) -> bool:
    """Clinicians and admins create cases and upload images."""
    return user_role(user) in (Role.CLINICIAN, Role.ADMIN)


def user_sees_all_cases(user: AnyUser) -> bool:
    return user_can_review(user)
