from rest_framework import serializers

from webapp.reviews.models import Decision, Review
from webapp.reviews.selectors import QueueFilter, QueueOrdering


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)

    class Meta:
        model = Review
        fields = ("id", "case_id", "prediction_id", "reviewer", "decision", "note", "created_at")
        read_only_fields = fields


class ReviewCreateSerializer(serializers.Serializer):
    case = serializers.IntegerField(min_value=1)
    prediction = serializers.IntegerField(min_value=1)
    decision = serializers.ChoiceField(choices=Decision.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="")


class QueueQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=[choice.value for choice in QueueFilter], default=QueueFilter.UNREVIEWED
    )
    ordering = serializers.ChoiceField(
        choices=[choice.value for choice in QueueOrdering], default=QueueOrdering.PROBABILITY_DESC
    )
    flagged_from = serializers.DateField(required=False)
    flagged_to = serializers.DateField(required=False)
