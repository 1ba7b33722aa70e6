from django.contrib import admin
from django.http import HttpRequest

from webapp.scoring.models import Prediction


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin[Prediction]):
    """View-only: the row is the scoring state machine, moved only by the scoring services."""

    list_display = (
        "id",
        "image",
        "status",
        "probability",
        "high_risk",
        "gate_reason",
        "model_version",
        "attempts",
        "created_at",
    )
    list_filter = ("status", "high_risk", "gate_reason", "model_version")
    list_select_related = ("image",)
    raw_id_fields = ("image",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Prediction | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Prediction | None = None) -> bool:
        return False
