"""The sign-in throttle: django-axes, with a limit per username and a higher one per address.

Axes guards every way in that checks a password through Django's `authenticate()` (the
sign-in page, the admin's sign-in page and the API token endpoint), so one count of failures
covers them all.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from webapp.accounts.selectors import username_for_audit

LOCKED_OUT_MESSAGE = (
    "Too many failed sign-ins for this account or from this address. Wait a few minutes and "
    "try again, or ask an administrator to reset your password."
)


class LoginFailureHandler(AxesDatabaseHandler):
    """Axes' database handler, with its own, higher limit for one client address.

    Axes compares the largest count of its lockout parameters (username, then address) with
    one limit. Everyone behind one hospital NAT shares an address, so an address may fail more
    often than a username may: its count is scaled onto the username limit first.
    """

    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        by_username, by_address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        # Integer division keeps "scaled count >= username limit" exactly "count >= IP limit".
        scaled = by_address * settings.LOGIN_FAILURE_LIMIT // settings.LOGIN_IP_FAILURE_LIMIT
        return max(by_username, scaled)


def failure_limit(request: HttpRequest | None, credentials: dict[str, Any] | None) -> int:
    """Failures allowed for one username (an address's count is scaled onto it)."""
    return int(settings.LOGIN_FAILURE_LIMIT)


def cool_off(request: HttpRequest | None) -> timedelta:
    """How long after the last failure a lockout lasts."""
    return timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)


def login_username(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str:
    """The username failures are counted under: "Alice " and "alice" share one count."""
    return username_for_audit((credentials or {}).get("username"))


def locked_out_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any
) -> HttpResponse:
    """The 429 for a sign-in refused by the throttle: the API's error format, or the page."""
    retry_after = str(settings.LOGIN_FAILURE_WINDOW_SECONDS)
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {
                "error": {
                    "status": 429,
                    "code": "throttled",
                    "message": LOCKED_OUT_MESSAGE,
                    "details": None,
                }
            },
            status=429,
        )
    else:
        # An unbound form: the point is not to try the password again.
        response = TemplateResponse(
            request,
            "registration/login.html",
            {"form": AuthenticationForm(request), "throttle_message": LOCKED_OUT_MESSAGE},
            status=429,
        )
        response.render()
    response["Retry-After"] = retry_after
    return response
