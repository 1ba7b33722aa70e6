from typing import Any

from django import forms
from django.db.models import QuerySet

from webapp.reviews.models import Decision
from webapp.reviews.selectors import QueueFilter, QueueOrdering
from webapp.scoring.models import Prediction


class PredictionChoiceField(forms.ModelChoiceField[Prediction]):
    def label_from_instance(self, obj: Prediction) -> str:
        flag = "high risk" if obj.high_risk else "low risk"
        return f"Image {obj.image_id}: {obj.probability:.1%} ({flag})"


class ReviewForm(forms.Form):
    prediction = PredictionChoiceField(queryset=Prediction.objects.none(), label="Score reviewed")
    decision = forms.ChoiceField(choices=Decision.choices, widget=forms.RadioSelect)
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args: Any, predictions: QuerySet[Prediction], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["prediction"]
        assert isinstance(field, PredictionChoiceField)
        field.queryset = predictions
        first = predictions.first()
        if first is not None:
            field.initial = first.pk
        field.empty_label = None


class QueueFilterForm(forms.Form):
    state = forms.ChoiceField(
        choices=[
            (QueueFilter.UNREVIEWED, "Unreviewed"),
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
    flagged_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    flagged_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
