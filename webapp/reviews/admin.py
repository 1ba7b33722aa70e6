from django.contrib import admin
from django.http import HttpRequest

from webapp.reviews.models import Review


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin[Review]):
    """View-only: recording a review also updates the queue and the history (review_create)."""

    list_display = (
        "id",
        "case",
        "prediction",
        "reviewer",
        "decision",
        "created_at",
        "superseded_at",
    )
    list_filter = ("decision",)
    list_select_related = ("case", "prediction", "reviewer")
    raw_id_fields = ("case", "prediction")
    search_fields = ("case__subject_ref", "reviewer__username", "note")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Review | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Review | None = None) -> bool:
        return False
