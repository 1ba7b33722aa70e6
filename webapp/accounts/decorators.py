from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from webapp.accounts.roles import AnyUser

ViewFunc = Callable[..., HttpResponse]


def role_required(check: Callable[[AnyUser], bool]) -> Callable[[ViewFunc], ViewFunc]:
    """Answer 403 unless the signed-in user's role passes the check."""

    def decorator(view: ViewFunc) -> ViewFunc:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not check(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
