"""How API clients authenticate: an API token, sent as `Token <key>` or `Bearer <key>`."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from webapp.accounts.models import ApiToken, User
from webapp.accounts.selectors import api_token_for_key


class ApiTokenAuthentication(TokenAuthentication):
    """An API token under the `Token` scheme, looked up by the digest of its key."""

    def authenticate_credentials(self, key: str) -> tuple[User, ApiToken]:
        token = api_token_for_key(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token


class BearerTokenAuthentication(ApiTokenAuthentication):
    """The same API token under the `Bearer` scheme that most HTTP clients send by default."""

    keyword = "Bearer"
