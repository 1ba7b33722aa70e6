from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.serializers import as_serializer_error

from webapp.lib.serializers import DisclaimerField, StrictInputSerializer
from webapp.reviews.forms import NOTE_MAX_LENGTH, flag_date_in_range, flag_dates_in_order
from webapp.reviews.models import Decision, Review
from webapp.reviews.selectors import QueueFilter, QueueOrdering

# Ids are bigint columns.
MAX_ID = 2**63 - 1


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)
    standing = serializers.BooleanField(
        read_only=True,
        help_text=(
            "Whether this is the decision that counts for its score. A newer review of the "
            "same score supersedes it; the superseded one stays in the history."
        ),
    )
    superseded_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When a newer review superseded it; null while it stands.",
    )
    superseded_by = serializers.IntegerField(
        source="superseded_by_id",
        read_only=True,
        allow_null=True,
        help_text="The id of the review that superseded it; null while it stands.",
    )
    disclaimer = DisclaimerField()

    class Meta:
        model = Review
        fields = (
            "id",
            "case_id",
            "prediction_id",
            "reviewer",
            "decision",
            "note",
            "created_at",
            "standing",
            "superseded_at",
            "superseded_by",
            "disclaimer",
        )
        read_only_fields = fields


class ReviewCreateSerializer(StrictInputSerializer):
    case = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    prediction = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    decision = serializers.ChoiceField(choices=Decision.choices)
    note = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=NOTE_MAX_LENGTH
    )


class QueueQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=[choice.value for choice in QueueFilter], default=QueueFilter.UNREVIEWED
    )
    ordering = serializers.ChoiceField(
        choices=[choice.value for choice in QueueOrdering], default=QueueOrdering.PROBABILITY_DESC
    )
    flagged_from = serializers.DateField(required=False, validators=[flag_date_in_range])
    flagged_to = serializers.DateField(required=False, validators=[flag_date_in_range])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            flag_dates_in_order(attrs.get("flagged_from"), attrs.get("flagged_to"))
        except DjangoValidationError as exc:
            raise serializers.ValidationError(as_serializer_error(exc)) from exc
        return attrs
