from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from webapp.cases.models import BodySite, Case, Image
from webapp.cases.serializers import CaseSerializer
from webapp.casework.forms import NOTES_MAX_LENGTH
from webapp.lib.serializers import DisclaimerField, StrictInputSerializer
from webapp.reviews.serializers import ReviewSerializer
from webapp.scoring.models import Prediction
from webapp.scoring.serializers import PredictionSerializer


class ImageSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True)
    file_url = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField()
    review = serializers.SerializerMethodField()
    disclaimer = DisclaimerField()

    class Meta:
        model = Image
        fields = (
            "id",
            "case_id",
            "original_filename",
            "width",
            "height",
            "format",
            "sha256",
            "uploaded_by",
            "uploaded_at",
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
