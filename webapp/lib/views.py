"""The health endpoint and the answers to refused, unmatched and failed requests (outages too)."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import sys

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.html import escape
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from rest_framework import exceptions

from webapp.accounts.models import User
from webapp.audit.services import audit_record_denial
from webapp.lib.api import error_body, request_limit_error
from webapp.lib.disclaimer import DISCLAIMER
from webapp.lib.health import health_report

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


@login_not_required
@never_cache
@require_GET
def health_view(request: HttpRequest) -> JsonResponse:
    """200 when the database, broker and model artifact are usable, 503 otherwise.

    Anyone gets the status alone. Staff, probes sending the health token and probes on a probe
    network also get each component's detail (which names hosts, ports and paths) and may add
    `?workers=1` to ask the scoring workers, which holds the web worker for up to a second.
    """
    detailed = health_caller_trusted(request)
    include_workers = detailed and request.GET.get("workers") in ("1", "true", "yes")
    healthy, report = health_report(include_workers=include_workers)
    if not detailed:
        report = {"status": report["status"]}
    response = JsonResponse(report, status=200 if healthy else 503)
    if not healthy:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def health_caller_trusted(request: HttpRequest) -> bool:
    """Whether the caller may see the health details.

    Staff may; so may the health token's holder, and a probe on a probe network (by default
    the machine itself) that came straight in, not through a proxy: a request a proxy passed
    on carries X-Forwarded-For, however near the proxy is.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    if _from_probe_network(request):
        return True
    expected = settings.HEALTH_TOKEN
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if expected is None or scheme.lower() != "bearer" or not sent:
        return False
    return secrets.compare_digest(sent.strip().encode(), expected.encode())


def _from_probe_network(request: HttpRequest) -> bool:
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in settings.HEALTH_PROBE_NETWORKS)


def _database_down() -> bool:
    error = sys.exc_info()[1]
    # OperationalError and InterfaceError mean the connection, not the query, failed.
    return isinstance(error, OperationalError | InterfaceError) or (
        isinstance(error, DatabaseError) and "connection" in str(error).lower()
    )


def _wants_json(request: HttpRequest) -> bool:
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
    if _wants_json(request):
        return JsonResponse(body, status=status)
    return HttpResponse(
        "<!doctype html><title>DermaTriage</title><h1>Request refused</h1>"
        f"<p>{escape(body['error']['message'])}</p>",
        status=status,
    )


def _record_denial(request: HttpRequest, status: int) -> None:
    """Record a page's refusal; an address that matched no view refused nothing."""
    match = request.resolver_match
    if match is None:
        return
    case_id = match.kwargs.get("case_id")
    user = getattr(request, "user", None)
    audit_record_denial(
        actor=user if isinstance(user, User) else None,
        via="page",
        method=request.method or "",
        path=request.path,
        status=status,
        case_id=case_id if isinstance(case_id, int) else None,
    )


def not_found_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer a 404: in the API's error format under /api/, else the site's 404 page.

    An API view answers its own 404s; this one is for paths the URLs do not match at all,
    such as /api/v1/cases/abc/, which an API client must still be able to read, and for pages
    refusing what they were asked for (another's case), which is recorded.
    """
    _record_denial(request, 404)
    if _wants_json(request):
        body = error_body(exceptions.NotFound())
        return JsonResponse(body, status=body["error"]["status"])
    return defaults.page_not_found(request, exception)


def permission_denied_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer a page the user's role does not allow with the site's 403 page, and record it."""
    _record_denial(request, 403)
    return defaults.permission_denied(request, exception)


def server_error_view(request: HttpRequest) -> HttpResponse:
    """Answer an unhandled error; a database outage becomes a 503 the client may retry."""
    if _database_down():
        status, code = 503, "service_unavailable"
        message = "The service is briefly unavailable. Nothing was saved; try again shortly."
    else:
        status, code = 500, "server_error"
        message = "Something went wrong on the server. Nothing was saved."
    if _wants_json(request):
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
    context = {"heading": heading, "message": message, "disclaimer": DISCLAIMER}
    try:
        return loader.get_template("500.html").render(context)
    except Exception:
        logger.exception("The 500 page could not be rendered")
        return (
            f"<!doctype html><title>DermaTriage</title><h1>{escape(heading)}</h1>"
            f"<p>{escape(message)}</p><p>{escape(DISCLAIMER)}</p>"
        )
