"""Permissions that follow from a user's role, so an admin can administer without grants."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.backends import ModelBackend
from django.db.models import Model
from django.http import HttpRequest

from webapp.accounts.roles import role_permissions


class RoleBackend(ModelBackend):
    """Django's username and password backend, plus the permissions of the user's role.

    Roles are the one source of what a user may do; deriving the admin's permissions from the
    role (rather than storing grants that must be kept in step with it) means that changing a
    role changes the permissions with it. Grants given explicitly still count.
    """

    def get_all_permissions(self, user_obj: Any, obj: Model | None = None) -> set[str]:
        granted = super().get_all_permissions(user_obj, obj)
        if obj is not None:  # no object-level permissions
            return granted
        return granted | role_permissions(user_obj)


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' check, which refuses a sign-in while recent failures hit the limit.

    Every sign-in from a client comes with its request; one without (a shell, a management
    command, a test client's `login()`) has no client to throttle and is let through to the
    next backend, where axes would raise instead.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
