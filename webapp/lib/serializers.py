from rest_framework import serializers


class ErrorBodySerializer(serializers.Serializer[dict[str, object]]):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField(allow_null=True)


class ErrorSerializer(serializers.Serializer[dict[str, object]]):
    """The shape of every error answer of the API."""

    error = ErrorBodySerializer()
