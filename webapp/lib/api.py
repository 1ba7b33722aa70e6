"""Pagination and the single error format shared by every REST endpoint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

# How long a 503 (the database or a dependency down) asks the client to wait before retrying.
RETRY_AFTER_SECONDS = 5


class DefaultPagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"


class Conflict(exceptions.APIException):
    """The request clashes with what is stored (the same thing twice); nothing was changed."""

    status_code = 409
    default_code = "conflict"
    default_detail = "The request conflicts with what is already stored."


class TooManyParts(exceptions.APIException):
    status_code = 400
    default_code = "too_many_parts"


def request_limit_error(exc: Exception) -> exceptions.APIException | None:
    """The API error for a request beyond Django's upload limits, saying which limit; else None.

    Django raises these while parsing the body, as SuspiciousOperation, which it answers with
    a bare HTML 400 page that says nothing of the limit.
    """
    if isinstance(exc, RequestDataTooBig):
        limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
        return RequestTooLarge(f"The request body is larger than the {limit_mb} MB limit.")
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return TooManyParts(f"At most {limit} files may be sent in one request.", "too_many_files")
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return TooManyParts(
            f"At most {limit} fields may be sent in one request.", "too_many_fields"
        )
    return None


def error_body(exc: exceptions.APIException) -> dict[str, Any]:
    """The API's error format for an exception DRF knows how to answer."""
    if isinstance(exc, exceptions.ValidationError):
        message = "The request is invalid."
        details: Any = exc.detail
        code = "invalid"
    else:
        message = str(exc.detail)
        details = None
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
    return {
        "error": {
            "status": exc.status_code,
            "code": code,
            "message": message,
            "details": details,
        }
    }


class FileContentNegotiation(BaseContentNegotiation):
    """For views answering with a file: the file's type decides, not the client's Accept.

    The views' own renderer (JSON) is then used only for their error answers.
    """

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser:
        return next(iter(parsers))

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Answer every API error as {"error": {"status", "code", "message", "details"}}."""
    limit_error = request_limit_error(exc)
    if limit_error is not None:
        exc = limit_error
    # Services raise Django's ValidationError; the API reports it like a serializer error.
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404 | ObjectDoesNotExist):
        # Selectors raise DoesNotExist for rows the user may not see: a 404, never a hint.
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    response.data = error_body(exc)
    return response


# What the API answers when a request may not have what it asked for. DRF's own NotFound is
# left out: it is raised for a page past the end of a list, not for a refused row.
DENIALS = (
    exceptions.NotAuthenticated,
    exceptions.AuthenticationFailed,
    exceptions.PermissionDenied,
    PermissionDenied,
    Http404,
    ObjectDoesNotExist,
)


def error_responses(*statuses: int) -> dict[int, type]:
    """OpenAPI responses for the given error statuses, all in the shared error format."""
    from webapp.lib.serializers import ErrorSerializer

    return dict.fromkeys(statuses, ErrorSerializer)
