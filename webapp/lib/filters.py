"""Query-string filters shared by the API's list endpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from rest_framework import filters
from rest_framework.views import APIView

# Real time zones lie within UTC-12 and UTC+14; PostgreSQL refuses offsets past 15:59.
MAX_UTC_OFFSET = timedelta(hours=14)


class UtcIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value: Any) -> datetime | None:
        moment = super().to_python(value)
        if moment is None:
            return None
        offset = moment.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise forms.ValidationError(
                "Use a time zone offset between -14:00 and +14:00.", code="invalid_offset"
            )
        try:
            return moment.astimezone(UTC) if offset is not None else moment
        except OverflowError as exc:
            # 9999-12-31T23:59:59-14:00 is a valid ISO date-time, but after year 9999 in UTC.
            raise forms.ValidationError(
                "The date-time is out of range once converted to UTC.", code="out_of_range"
            ) from exc


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time filter that refuses impossible offsets with 400, not a 500."""

    field_class = UtcIsoDateTimeField


class OrderingFilter(filters.OrderingFilter):
    """DRF's `ordering` parameter, documented with the values the view accepts."""

    ordering_description = (
        "Sort the results by these fields, comma-separated; a leading '-' sorts descending."
    )

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        fields = getattr(view, "ordering_fields", None)
        if not fields or fields == "__all__":
            return list(super().get_schema_operation_parameters(view))
        values = [value for field in fields for value in (field, f"-{field}")]
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": self.ordering_description,
                "schema": {"type": "array", "items": {"type": "string", "enum": values}},
                "style": "form",
                "explode": False,
            }
        ]
