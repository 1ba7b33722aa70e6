"""How the OpenAPI schema is drawn from the API views (drf-spectacular)."""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from rest_framework.pagination import BasePagination


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, showing only text written for the API's users.

    Docstrings are for the people who maintain the code: an operation's description comes
    from its @extend_schema(description=...) alone, and a serializer's from its own docstring,
    never from one it inherits from a base class.
    """

    def get_description(self) -> str:  # type: ignore[override]
        return ""

    def _get_paginator(self) -> BasePagination | None:
        # Only GET lists are paginated; a POST answering with the rows it created lists them
        # all, whatever the view's pagination class.
        if self.method != "GET":
            return None
        paginator: BasePagination | None = super()._get_paginator()
        return paginator

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        own_doc = type(serializer).__dict__.get("__doc__")
        if not own_doc:
            schema.pop("description", None)
        return schema
