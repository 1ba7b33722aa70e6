from __future__ import annotations

from django.db import transaction

from webapp.accounts.models import Role, User


@transaction.atomic
def user_create(*, username: str, password: str, role: Role, email: str = "") -> User:
    """Create a user with a role; admins also get access to the Django admin."""
    user = User(username=username, email=email, role=role, is_staff=role == Role.ADMIN)
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
    user.role = role
    user.is_staff = role == Role.ADMIN
    user.is_active = True
    user.set_password(password)
    user.save(update_fields=["role", "is_staff", "is_active", "password"])
    return user
