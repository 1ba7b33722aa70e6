from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from webapp.cases.models import BodySite, Case, Image
from webapp.cases.serializers import CaseSerializer
from webapp.cases.services import WITHDRAWAL_REASON_MAX_LENGTH
from webapp.casework.forms import NOTES_MAX_LENGTH
from webapp.lib.serializers import DisclaimerField, StrictInputSerializer
from webapp.reviews.serializers import ReviewSerializer
from webapp.scoring.models import Prediction
from webapp.scoring.serializers import PredictionSerializer


class ImageSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True)
    withdrawn = serializers.BooleanField(
        read_only=True,
        help_text=(
            "Whether the image was withdrawn: kept with its scores and reviews, but no longer "
            "scored and no longer counted in the review queue."
        ),
    )
    withdrawn_by = serializers.CharField(
        source="withdrawn_by.username", read_only=True, allow_null=True, default=None
    )
    file_url = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField()
    review = serializers.SerializerMethodField()
    disclaimer = DisclaimerField()

    class Meta:
        model = Image
        fields: tuple[str, ...] = (
            "id",
            "case_id",
            "original_filename",
            "width",
            "height",
            "format",
            "sha256",
            "uploaded_by",
            "uploaded_at",
            "withdrawn",
            "withdrawn_at",
            "withdrawn_by",
            "withdrawal_reason",
            "file_url",
            "prediction",
            "review",
            "disclaimer",
        )
        read_only_fields = fields

    def get_file_url(self, image: Image) -> str:
        url = reverse("api:image-file", args=(image.case_id, image.pk))
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url

    @extend_schema_field(PredictionSerializer(allow_null=True))
    def get_prediction(self, image: Image) -> dict[str, Any] | None:
        """The latest prediction of the image."""
        latest = _latest_prediction(image)
        return None if latest is None else PredictionSerializer(latest, context=self.context).data

    @extend_schema_field(
        ReviewSerializer(
            allow_null=True,
            help_text=(
                "The standing review of the latest prediction: the decision that counts, "
                "or null while it has none. Earlier ones are in the review list."
            ),
        )
    )
    def get_review(self, image: Image) -> dict[str, Any] | None:
        latest = _latest_prediction(image)
        # case_image_list prefetches only the standing reviews.
        standing = list(latest.reviews.all()) if latest is not None else []
        return ReviewSerializer(standing[0]).data if standing else None


def _latest_prediction(image: Image) -> Prediction | None:
    predictions = list(image.predictions.all())
    if not predictions:
        return None
    return max(predictions, key=lambda prediction: (prediction.created_at, prediction.pk))


class UploadedImageSerializer(ImageSerializer):
    duplicate = serializers.SerializerMethodField(
        help_text=(
            "True when the file's bytes were already stored in this case: nothing new was "
            "stored, and this is the image that already holds them."
        ),
    )

    class Meta(ImageSerializer.Meta):
        fields = (*ImageSerializer.Meta.fields, "duplicate")
        read_only_fields = fields

    def get_duplicate(self, image: Image) -> bool:
        return bool(self.context.get("duplicate", False))


class CaseDetailSerializer(CaseSerializer):
    images = serializers.SerializerMethodField()

    class Meta(CaseSerializer.Meta):
        fields = (*CaseSerializer.Meta.fields, "images")
        read_only_fields = fields

    @extend_schema_field(ImageSerializer(many=True))
    def get_images(self, case: Case) -> list[dict[str, Any]]:
        images = self.context.get("images", [])
        return list(ImageSerializer(images, many=True, context=self.context).data)


class CaseCreateSerializer(StrictInputSerializer):
    subject_ref = serializers.CharField(
        max_length=64, help_text="A pseudonymous reference for the person. Never a name."
    )
    body_site = serializers.ChoiceField(choices=BodySite.choices)
    notes = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=NOTES_MAX_LENGTH
    )


class CaseUpdateSerializer(StrictInputSerializer):
    """The fields of a case an edit may change; those left out keep their value."""

    subject_ref = serializers.CharField(
        max_length=64,
        required=False,
        help_text="A pseudonymous reference for the person. Never a name.",
    )
    body_site = serializers.ChoiceField(choices=BodySite.choices, required=False)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=NOTES_MAX_LENGTH)


class ImageWithdrawSerializer(StrictInputSerializer):
    reason = serializers.CharField(
        max_length=WITHDRAWAL_REASON_MAX_LENGTH, help_text="Why the image is withdrawn."
    )


def _image_files(help_text: str) -> serializers.ListField:
    return serializers.ListField(
        # Empty files are judged with the rest by image_sanitize, so every refusal reads alike.
        child=serializers.FileField(allow_empty_file=True),
        required=False,
        help_text=help_text,
    )


@extend_schema_serializer(deprecate_fields=["files"])
class ImageUploadSerializer(serializers.Serializer):
    """The files of an upload, under `images` (the browser form's name too)."""

    images = _image_files("One or more image files (JPEG, PNG or WebP).")
    # The API's first name for the field, kept so existing integrations go on working.
    files = _image_files("Deprecated: the former name of `images`, still accepted. Use `images`.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        images = [*attrs.get("images", []), *attrs.get("files", [])]
        if not images:
            raise serializers.ValidationError(
                {"images": "Choose at least one image file to upload."}, code="required"
            )
        return {"images": images}
