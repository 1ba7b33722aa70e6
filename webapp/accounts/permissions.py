from collections.abc import Callable

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from webapp.accounts.roles import AnyUser, user_role


class HasRole(BasePermission):
    """The one place API role rules are checked; each view declares `role_checks`.

    `role_checks` maps an HTTP method (or "*") to a predicate on the user, e.g.
    {"GET": user_sees_all_cases, "POST": user_can_upload}. Methods it does not name are open to
    any signed-in user; object visibility is the selectors' job.
    """

    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if user_role(user) is None:
            return False
        checks: dict[str, Callable[[AnyUser], bool]] = getattr(view, "role_checks", {})
        check = checks.get(request.method or "", checks.get("*"))
        return check is None or check(user)
