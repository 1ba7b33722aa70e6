"""Pagination and the single error format shared by every REST endpoint."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler


class DefaultPagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Answer every API error as {"error": {"status", "code", "message", "details"}}."""
    # Services raise Django's ValidationError; the API reports it like a serializer error.
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404 | ObjectDoesNotExist):
        # Selectors raise DoesNotExist for rows the user may not see: a 404, never a hint.
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response

    if isinstance(exc, exceptions.ValidationError):
        message = "The request is invalid."
        details: Any = exc.detail
        code = "invalid"
    else:
        message = str(exc.detail)
        details = None
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
    response.data = {
        "error": {
            "status": response.status_code,
            "code": code,
            "message": message,
            "details": details,
        }
    }
    return response


def error_responses(*statuses: int) -> dict[int, type]:
    """OpenAPI responses for the given error statuses, all in the shared error format."""
    from webapp.lib.serializers import ErrorSerializer

    return dict.fromkeys(statuses, ErrorSerializer)
