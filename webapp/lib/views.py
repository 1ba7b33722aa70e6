"""The answers to requests Django refused before any view ran, and to failed ones (outages too).

Refusals a view raised (403, 404) are answered by webapp.config.errors, which records them.
"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.html import escape
from rest_framework import exceptions

from webapp.lib.api import RETRY_AFTER_SECONDS, error_body, request_limit_error

logger = logging.getLogger(__name__)


def _database_down() -> bool:
    error = sys.exc_info()[1]
    # OperationalError and InterfaceError mean the connection, not the query, failed.
    return isinstance(error, OperationalError | InterfaceError) or (
        isinstance(error, DatabaseError) and "connection" in str(error).lower()
    )


def wants_json(request: HttpRequest) -> bool:
    """Whether to answer in the API's error format rather than with a page."""
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


def bad_request_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer a request Django refused before any view ran, saying which limit it broke.

    Requests past the upload limits (files, fields, body size) end here when they are not
    caught on the way, as do other malformed requests.
    """
    limit_error = request_limit_error(exception)
    body = (
        error_body(limit_error)
        if limit_error is not None
        else error_body(exceptions.ParseError("The request could not be read.", "bad_request"))
    )
    status = body["error"]["status"]
    if wants_json(request):
        return JsonResponse(body, status=status)
    return HttpResponse(
        "<!doctype html><title>DermaTriage</title><h1>Request refused</h1>"
        f"<p>{escape(body['error']['message'])}</p>",
        status=status,
    )


def server_error_view(request: HttpRequest) -> HttpResponse:
    """Answer an unhandled error; a database outage becomes a 503 the client may retry."""
    if _database_down():
        status, code = 503, "service_unavailable"
        message = "The service is briefly unavailable. Nothing was saved; try again shortly."
    else:
        status, code = 500, "server_error"
        message = "Something went wrong on the server. Nothing was saved."
    if wants_json(request):
        response: HttpResponse = JsonResponse(
            {"error": {"status": status, "code": code, "message": message, "details": None}},
            status=status,
        )
    else:
        heading = "Temporarily unavailable" if status == 503 else "Server error"
        response = HttpResponse(server_error_page(heading=heading, message=message), status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error_page(*, heading: str, message: str) -> str:
    """The 500 page in the site's layout, rendered without the request or the database.

    Either may be what failed, so no context processor runs (they read the session and the
    user); the page gets the disclaimer and its words, and nothing else.
    """
    disclaimer = settings.DISCLAIMER
    context = {"heading": heading, "message": message, "disclaimer": disclaimer}
    try:
        return loader.get_template("500.html").render(context)
    except Exception:
        logger.exception("The 500 page could not be rendered")
        return (
            f"<!doctype html><title>DermaTriage</title><h1>{escape(heading)}</h1>"
            f"<p>{escape(message)}</p><p>{escape(disclaimer)}</p>"
        )
