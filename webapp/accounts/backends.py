"""Permissions that follow from a user's role, so an admin can administer without grants."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.db.models import Model

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
