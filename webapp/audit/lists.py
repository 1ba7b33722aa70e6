"""API lists whose reads are audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record_list_view


class AuditedListApi(generics.ListAPIView):
    """A list whose every page read is one audit event naming the cases on it."""

    audit_action: AuditAction

    def audit_case_ids(self, rows: list[Any]) -> list[int]:
        """The cases the rows show (the rows are cases unless a subclass says otherwise)."""
        return [row.pk for row in rows]

    def audit_data(self, rows: list[Any]) -> dict[str, Any]:
        """More for the event's data, such as the ids of rows that are not cases."""
        return {}

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Every list API requires a signed-in user (IsAuthenticated runs before this).
        assert isinstance(request.user, AbstractBaseUser)
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page) if page is not None else list(queryset)
        audit_record_list_view(
            action=self.audit_action,
            viewer=request.user,
            via="api",
            case_ids=self.audit_case_ids(rows),
            data=self.audit_data(rows),
        )
        data = self.get_serializer(rows, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)
