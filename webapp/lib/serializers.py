from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field(OpenApiTypes.STR)
class DisclaimerField(serializers.Field):
    """The project's disclaimer, carried by every payload that holds case data or scores."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(source="*", read_only=True)
        kwargs.setdefault("help_text", f"Always present: {settings.DISCLAIMER}")
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        return str(settings.DISCLAIMER)


class StrictInputSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not know, and text that is not text.

    A misspelt optional field (`note` sent as `notes`) would otherwise be dropped in silence
    and the request succeed without it. DRF's CharField turns JSON numbers into text, so
    `1e999999` would be stored as "inf"; text fields here accept strings only.
    """

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["This field is not accepted here."] for name in unknown}
                )
            not_text = {
                name: [serializers.ErrorDetail("Not a valid string.", code="invalid")]
                for name, field in self.fields.items()
                if isinstance(field, serializers.CharField)
                and not field.read_only
                and data.get(name) is not None
                and not isinstance(data.get(name), str)
            }
            if not_text:
                raise serializers.ValidationError(not_text)
        return super().to_internal_value(data)


class ErrorBodySerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    """The shape of every error answer of the API."""

    error = ErrorBodySerializer()
