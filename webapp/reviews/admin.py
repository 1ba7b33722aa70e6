from django.contrib import admin

from webapp.reviews.models import Review


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin[Review]):
    list_display = ("id", "case", "prediction", "reviewer", "decision", "created_at")
    list_filter = ("decision",)
    list_select_related = ("case", "prediction", "reviewer")
    raw_id_fields = ("case", "prediction")
    search_fields = ("case__subject_ref", "reviewer__username", "note")
