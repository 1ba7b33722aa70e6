from django.contrib import admin

from webapp.scoring.models import Prediction


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin[Prediction]):
    list_display = (
        "id",
        "image",
        "status",
        "probability",
        "high_risk",
        "model_version",
        "attempts",
        "created_at",
    )
    list_filter = ("status", "high_risk", "model_version")
    list_select_related = ("image",)
    raw_id_fields = ("image",)
    readonly_fields = ("created_at", "started_at", "finished_at")
