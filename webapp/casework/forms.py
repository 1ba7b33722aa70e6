from typing import Any

from django import forms
from django.core.validators import MaxLengthValidator

from webapp.cases.models import Case
from webapp.cases.services import WITHDRAWAL_REASON_MAX_LENGTH

# Free text is bounded so a pasted document cannot bloat every page that shows it.
NOTES_MAX_LENGTH = 5000


class CaseForm(forms.ModelForm[Case]):
    class Meta:
        model = Case
        fields = ("subject_ref", "body_site", "notes")
        widgets = {"notes": forms.Textarea(attrs={"rows": 3, "maxlength": NOTES_MAX_LENGTH})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        notes = self.fields["notes"]
        assert isinstance(notes, forms.CharField)
        notes.max_length = NOTES_MAX_LENGTH
        notes.validators.append(MaxLengthValidator(NOTES_MAX_LENGTH))


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    """A file field that accepts several files at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget",
            MultipleFileInput(
                attrs={"accept": "image/jpeg,image/png,image/webp", "multiple": True}
            ),
        )
        # Empty files are judged with the rest by image_sanitize, so every refusal reads alike.
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> Any:
        if isinstance(data, list | tuple):
            return [super(MultipleImageField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)]


class ImageUploadForm(forms.Form):
    images = MultipleImageField(label="Images")


class CaseSearchForm(forms.Form):
    q = forms.CharField(
        label="Subject reference",
        required=False,
        max_length=64,
        strip=True,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search by subject"}),
    )


class ImageWithdrawForm(forms.Form):
    reason = forms.CharField(
        label="Reason for withdrawing",
        max_length=WITHDRAWAL_REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": WITHDRAWAL_REASON_MAX_LENGTH}),
    )


class CompareForm(forms.Form):
    """Which other image of the case the viewer's second pane shows."""

    compare = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
