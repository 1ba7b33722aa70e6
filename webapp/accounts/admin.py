from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.forms import ModelForm
from django.http import HttpRequest

from webapp.accounts.models import Role, User
from webapp.accounts.services import user_role_assign


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Accounts and their roles; what a user may do follows from the role alone."""

    list_display = ("username", "email", "role", "is_active", "is_staff", "last_login")
    list_filter = ("role", "is_active", "is_staff")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Role", {"fields": ("role", "is_active", "is_staff")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    # Grants beside the role, and superuser status, stay with superusers: an admin who could
    # set them could give anyone (themselves included) more than any role allows.
    superuser_fieldsets = (
        *fieldsets,
        ("Superuser only", {"fields": ("is_superuser", "groups", "user_permissions")}),
    )
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("Role", {"fields": ("role",)}))
    # Admin access follows from the role (user_role_assign), so it is shown, not edited.
    readonly_fields = ("is_staff", "last_login", "date_joined")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and request.user.is_superuser:
            return self.superuser_fieldsets
        return super().get_fieldsets(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Otherwise an admin could reset a superuser's password and sign in as them.
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: User, form: ModelForm[User], change: bool
    ) -> None:
        user_role_assign(user=obj, role=Role(obj.role))
        super().save_model(request, obj, form, change)
