from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from webapp.lib.serializers import DisclaimerField
from webapp.scoring.models import GATE_MESSAGES, GATE_REASONS, Prediction


class GateReasonField(serializers.ChoiceField):
    """The input gate's reason, or null for an image it let through (stored blank)."""

    def to_representation(self, value: Any) -> Any:
        return super().to_representation(value) if value else None


class PredictionSerializer(serializers.ModelSerializer):
    case_id = serializers.IntegerField(source="image.case_id", read_only=True)
    model_name = serializers.CharField(
        read_only=True, help_text="The model's honest name, e.g. a stand-in architecture."
    )
    probability = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text=(
            "Calibrated probability that the lesion is malignant, once done. When "
            "`gate_reason` is set it is the raw score of an image the model cannot judge, "
            "shown on request and not a risk."
        ),
    )
    gate_reason = GateReasonField(
        choices=GATE_REASONS,
        allow_null=True,
        read_only=True,
        help_text=(
            "Why the model cannot judge the image (the input gate's verdict), or null when it "
            "can or the score is not done. A gated image is never high risk; its case waits "
            "for a reviewer in the needs-a-better-image bucket."
        ),
    )
    gate_message = serializers.SerializerMethodField()
    heatmap_url = serializers.SerializerMethodField()
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
            "gate_reason",
            "gate_message",
            "heatmap_url",
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

    @extend_schema_field(
        serializers.CharField(allow_null=True, help_text="`gate_reason` in plain words.")
    )
    def get_gate_message(self, prediction: Prediction) -> str | None:
        return GATE_MESSAGES.get(prediction.gate_reason)

    @extend_schema_field(
        serializers.URLField(
            allow_null=True,
            help_text=(
                "A PNG overlay of what drove the score, transparent where nothing did, with the "
                "image's aspect ratio: draw it stretched over the image. Null until the score "
                "is done."
            ),
        )
    )
    def get_heatmap_url(self, prediction: Prediction) -> str | None:
        if not prediction.heatmap:
            return None
        url = reverse("api:prediction-heatmap", args=(prediction.pk,))
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url
