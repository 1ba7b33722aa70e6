from rest_framework import serializers

from webapp.cases.models import Case
from webapp.lib.serializers import DisclaimerField


class CaseSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    disclaimer = DisclaimerField()

    class Meta:
        model = Case
        fields: tuple[str, ...] = (
            "id",
            "subject_ref",
            "body_site",
            "notes",
            "created_by",
            "created_at",
            "updated_at",
            "review_state",
            "flagged_at",
            "top_probability",
            "disclaimer",
        )
        read_only_fields: tuple[str, ...] = fields
