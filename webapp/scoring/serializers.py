from rest_framework import serializers

from webapp.lib.serializers import DisclaimerField
from webapp.scoring.models import Prediction


class PredictionSerializer(serializers.ModelSerializer):
    case_id = serializers.IntegerField(source="image.case_id", read_only=True)
    model_name = serializers.CharField(
        read_only=True, help_text="The model's honest name, e.g. a stand-in architecture."
    )
    disclaimer = DisclaimerField()

    class Meta:
        model = Prediction
        fields = (
            "id",
            "image_id",
            "case_id",
            "status",
            "probability",
            "high_risk",
            "label",
            "threshold",
            "model_name",
            "model_version",
            "error_message",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "inference_ms",
            "disclaimer",
        )
        read_only_fields = fields
