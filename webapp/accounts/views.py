from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse

from webapp.accounts.selectors import login_throttled
from webapp.accounts.services import client_ip

THROTTLED_MESSAGE = (
    "Too many failed sign-ins for this account or from this address. Wait a few minutes and "
    "try again, or ask an administrator to reset your password."
)


class LoginView(auth_views.LoginView):
    """Django's sign-in form, refused with 429 while recent failures hit the limit."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", ""))
        if login_throttled(username=username, ip_address=client_ip(request)):
            # An unbound form: validating it would try the password, which is the point not to.
            context = self.get_context_data(
                form=self.get_form_class()(request), throttle_message=THROTTLED_MESSAGE
            )
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)
