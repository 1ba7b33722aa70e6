"""How API clients authenticate: an API token, sent as `Token <key>` or `Bearer <key>`."""

from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """The same API token under the `Bearer` scheme that most HTTP clients send by default."""

    keyword = "Bearer"
