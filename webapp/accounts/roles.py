"""Role checks shared by views, APIs and selectors, so each rule is written once."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser

from webapp.accounts.models import Role, User

AnyUser = User | AnonymousUser


def user_role(user: AnyUser) -> Role | None:
    """Return the user's effective role; superusers are always admins."""
    if not user.is_authenticated or not user.is_active:
        return None
    assert isinstance(user, User)
    if user.is_superuser:
        return Role.ADMIN
    return Role(user.role)


def user_is_admin(user: AnyUser) -> bool:
    return user_role(user) == Role.ADMIN


def user_can_review(user: AnyUser) -> bool:
    """Reviewers and admins see every case and the flagged queue, and record decisions."""
    return user_role(user) in (Role.REVIEWER, Role.ADMIN)


def user_can_upload(user: AnyUser) -> bool:
    """Clinicians and admins create cases and upload images."""
    return user_role(user) in (Role.CLINICIAN, Role.ADMIN)


def user_sees_all_cases(user: AnyUser) -> bool:
    return user_can_review(user)
