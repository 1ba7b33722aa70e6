"""Refused requests, recorded in the history against the case they asked for.

Here, above every app, because a refusal is answered by lib's generic code, recorded by audit,
and tied to a case only cases can look up.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response

from webapp.audit.services import audit_record_denial
from webapp.cases.selectors import case_find
from webapp.lib.api import DENIALS, error_body, exception_handler
from webapp.lib.views import wants_json


def _denial_record(
    *, user: object, via: str, method: str, path: str, status: int, case_id: object
) -> None:
    case_id = case_id if isinstance(case_id, int) else None
    audit_record_denial(
        actor=user if isinstance(user, AbstractBaseUser) else None,
        via=via,
        method=method,
        path=path,
        status=status,
        case=case_find(case_id=case_id) if case_id is not None else None,
        case_id=case_id,
    )


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """lib's API error answer, with refusals recorded."""
    response = exception_handler(exc, context)
    request = context.get("request")
    if response is not None and request is not None and isinstance(exc, DENIALS):
        _denial_record(
            # A failed authentication leaves the anonymous user; never ask the authenticators
            # again.
            user=getattr(request, "_user", None),
            via="api",
            method=request.method,
            path=request.path,
            status=response.status_code,
            case_id=context.get("kwargs", {}).get("case_id"),
        )
    return response


def _page_denial_record(request: HttpRequest, status: int) -> None:
    """Record a page's refusal; an address that matched no view refused nothing."""
    match = request.resolver_match
    if match is None:
        return
    _denial_record(
        user=getattr(request, "user", None),
        via="page",
        method=request.method or "",
        path=request.path,
        status=status,
        case_id=match.kwargs.get("case_id"),
    )


def not_found_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer a 404: in the API's error format under /api/, else the site's 404 page.

    An API view answers its own 404s; this one is for paths the URLs do not match at all,
    such as /api/v1/cases/abc/, which an API client must still be able to read, and for pages
    refusing what they were asked for (another's case), which is recorded.
    """
    _page_denial_record(request, 404)
    if wants_json(request):
        body = error_body(exceptions.NotFound())
        return JsonResponse(body, status=body["error"]["status"])
    return defaults.page_not_found(request, exception)


def permission_denied_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer a page the user's role does not allow with the site's 403 page, and record it."""
    _page_denial_record(request, 403)
    return defaults.permission_denied(request, exception)
