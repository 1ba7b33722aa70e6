from collections.abc import Callable
from typing import Any

from django.contrib.auth import middleware as auth_middleware
from django.http import HttpRequest, HttpResponseBase
from rest_framework.views import APIView


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Require a signed-in user for every page, leaving REST API views to DRF.

    API clients authenticate with a token, which this middleware cannot see; a redirect to the
    login form would also be the wrong answer for them. DRF's IsAuthenticated default answers
    401/403 in the API's own error format instead.
    """

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        view_class = getattr(view_func, "cls", None)
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class NoStoreMiddleware:
    """Mark every response that sets no caching of its own `Cache-Control: no-store`.

    Pages and API answers carry patient data, which must not stay in a shared computer's
    browser cache or in a proxy's. Static files never reach this middleware (WhiteNoise,
    earlier in the chain, answers them with long-lived caching).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response
