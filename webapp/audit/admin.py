from django.contrib import admin
from django.http import HttpRequest

from webapp.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = ("created_at", "action", "actor", "case")
    list_filter = ("action",)
    search_fields = ("actor__username", "case__subject_ref")
    date_hierarchy = "created_at"
    list_select_related = ("actor", "case")

    # The history is append-only, for admins too.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
