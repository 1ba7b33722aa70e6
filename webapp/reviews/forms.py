import datetime as dt
from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from webapp.reviews.models import Decision
from webapp.reviews.selectors import QueueFilter, QueueOrdering
from webapp.scoring.models import Prediction

NOTE_MAX_LENGTH = 5000

# The queue filters whole days as [start, next day); the last representable date has none.
FLAG_DATE_RANGE = (dt.date(1900, 1, 1), dt.date(9998, 12, 31))


def flag_date_in_range(value: dt.date) -> None:
    low, high = FLAG_DATE_RANGE
    if not low <= value <= high:
        raise ValidationError(f"Choose a date between {low} and {high}.", code="date_out_of_range")


FLAG_DATES_REVERSED = (
    "The \u201cflagged from\u201d date is after the \u201cflagged to\u201d date, so no case could "
    "match: choose a from date on or before the to date."
)


def flag_dates_in_order(flagged_from: dt.date | None, flagged_to: dt.date | None) -> None:
    """Refuse a date range that ends before it starts (it would silently match nothing)."""
    if flagged_from is not None and flagged_to is not None and flagged_from > flagged_to:
        raise ValidationError({"flagged_to": FLAG_DATES_REVERSED}, code="date_range_reversed")


class PredictionChoiceField(forms.ModelChoiceField[Prediction]):
    # Filled by ReviewForm: each score's image label, keyed by the score's id.
    image_labels: Mapping[int, str] = {}

    def label_from_instance(self, obj: Prediction) -> str:
        reviewed = ", reviewed" if getattr(obj, "reviewed", False) else ""
        image = self.image_labels.get(obj.pk, "Image")
        if obj.gate_reason:
            # No number: the model could not judge this image, so its score says nothing.
            reason = obj.get_gate_reason_display().rstrip(".")
            return f"{image}: needs a better image ({reason}{reviewed})"
        flag = "high risk" if obj.high_risk else "low risk"
        return f"{image}: {obj.probability:.1%} ({flag}{reviewed})"


class ReviewForm(forms.Form):
    prediction = PredictionChoiceField(queryset=Prediction.objects.none(), label="Score reviewed")
    decision = forms.ChoiceField(choices=Decision.choices, widget=forms.RadioSelect)
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=NOTE_MAX_LENGTH
    )

    def __init__(
        self,
        *args: Any,
        predictions: QuerySet[Prediction],
        image_labels: Mapping[int, str],
        **kwargs: Any,
    ) -> None:
        """`image_labels` maps each score's id to its image's label (see cases.image_labels)."""
        super().__init__(*args, **kwargs)
        field = self.fields["prediction"]
        assert isinstance(field, PredictionChoiceField)
        field.queryset = predictions
        field.image_labels = image_labels
        # Only a score still waiting for its review (flagged, or of an image the model could
        # not judge) is chosen in advance: preselecting one already reviewed invites a second
        # review of it by mistake.
        waiting = (
            predictions.filter(Q(high_risk=True) | ~Q(gate_reason=""))
            .filter(reviews__isnull=True)
            .first()
        )
        field.initial = waiting.pk if waiting is not None else None
        field.empty_label = "Choose a score"


class QueueFilterForm(forms.Form):
    state = forms.ChoiceField(
        choices=[
            (QueueFilter.UNREVIEWED, "Unreviewed"),
            (QueueFilter.NEEDS_IMAGE, "Needs a better image"),
            (QueueFilter.REVIEWED, "Reviewed"),
            (QueueFilter.ALL, "All"),
        ],
        required=False,
    )
    ordering = forms.ChoiceField(
        label="Sort by",
        choices=[
            (QueueOrdering.PROBABILITY_DESC, "Highest probability first"),
            (QueueOrdering.PROBABILITY_ASC, "Lowest probability first"),
            (QueueOrdering.FLAGGED_DESC, "Newest flag first"),
            (QueueOrdering.FLAGGED_ASC, "Oldest flag first"),
        ],
        required=False,
    )
    flagged_from = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[flag_date_in_range],
    )
    flagged_to = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[flag_date_in_range],
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        flag_dates_in_order(cleaned.get("flagged_from"), cleaned.get("flagged_to"))
        return cleaned
