import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from webapp.reviews.models import Decision, Review
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


# What each decision means for the image it is given on: for a flagged one, a verdict on the
# model's high-risk flag; for one the model cannot judge, a verdict on its input gate.
FLAGGED_DECISIONS = [
    (Decision.AGREE, "Agree \u2014 the model\u2019s high-risk flag stands"),
    (Decision.DISAGREE, "Disagree \u2014 not high risk"),
    (Decision.FOLLOW_UP, "Needs follow-up"),
    (Decision.REFER, "Refer"),
]
GATED_DECISIONS = [
    (Decision.AGREE, "Agree \u2014 the model cannot judge this image: a better one is needed"),
    (Decision.DISAGREE, "Disagree \u2014 this image is good enough to judge"),
    (Decision.FOLLOW_UP, "Needs follow-up"),
    (Decision.REFER, "Refer"),
]

# The keys of the case page's shortcuts (webapp/lib/static/js/review-keys.js), by decision.
DECISION_KEYS = {
    Decision.AGREE: "a",
    Decision.DISAGREE: "d",
    Decision.FOLLOW_UP: "f",
    Decision.REFER: "r",
}

NO_DECISION = "Choose a decision for at least one image to record a review."


@dataclass(frozen=True)
class ReviewRow:
    """One image's line of the case review form."""

    prediction: Prediction
    field_name: str
    label: str
    standing: Review | None


class CaseReviewForm(forms.Form):
    """A decision for each score of a case that asks for one, and one note for all of them.

    A score left without a decision keeps its standing review, if it has one; at least one
    decision is needed.
    """

    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=NOTE_MAX_LENGTH,
        help_text="Optional; kept with each decision recorded now.",
    )

    def __init__(
        self,
        *args: Any,
        predictions: Iterable[Prediction],
        image_labels: Mapping[int, str],
        **kwargs: Any,
    ) -> None:
        """`predictions` come from reviews.selectors.case_review_predictions; `image_labels`
        maps each score's id to its image's label (see cases.image_labels)."""
        super().__init__(*args, **kwargs)
        self.rows: list[ReviewRow] = []
        for prediction in predictions:
            name = f"decision_{prediction.pk}"
            label = image_labels.get(prediction.pk, "Image")
            self.fields[name] = forms.ChoiceField(
                label=label,
                choices=GATED_DECISIONS if prediction.gate_reason else FLAGGED_DECISIONS,
                widget=forms.RadioSelect,
                required=False,
            )
            standing = getattr(prediction, "standing_reviews", None) or [None]
            self.rows.append(ReviewRow(prediction, name, label, standing[0]))
        # Drawn last, under the decisions.
        self.order_fields([row.field_name for row in self.rows])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors and not self.decisions():
            raise ValidationError(NO_DECISION, code="required")
        return cleaned

    def decisions(self) -> list[tuple[Prediction, Decision]]:
        """The decisions chosen, each with its score, in the form's order."""
        return [
            (row.prediction, Decision(self.cleaned_data[row.field_name]))
            for row in self.rows
            if self.cleaned_data.get(row.field_name)
        ]

    def bound_rows(self) -> list[tuple[ReviewRow, forms.BoundField, list[tuple[Any, str]]]]:
        """Each row with its field, and the field's radio buttons each with its key."""
        rows = []
        for row in self.rows:
            field = self[row.field_name]
            radios = [(radio, DECISION_KEYS[Decision(radio.data["value"])]) for radio in field]
            rows.append((row, field, radios))
        return rows


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
