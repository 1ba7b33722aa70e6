from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.models import ApiToken, User
from webapp.accounts.services import api_token_issue, api_token_revoke, api_tokens_revoke
from webapp.lib.api import error_responses

TokenSerializer = inline_serializer(
    "Token",
    fields={
        "token": serializers.CharField(help_text="The key; it is shown this once, never again."),
        "expires_at": serializers.DateTimeField(),
    },
)


class TokenApi(APIView):
    """Exchange a username and password for an API token, or revoke the token in use."""

    serializer_class = AuthTokenSerializer

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "POST":
            return [AllowAny()]
        return [IsAuthenticated()]

    @extend_schema(
        description=(
            "Exchange a username and password for a new API token. Keep it: only a digest is "
            "stored, so it is shown this once. Send it as `Authorization: Token <token>`. It "
            "stops working when it expires, when it is revoked and when the password changes."
        ),
        request=AuthTokenSerializer,
        responses={200: TokenSerializer, **error_responses(400, 429)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = AuthTokenSerializer(data=request.data, context={"request": request._request})
        payload.is_valid(raise_exception=True)
        user = payload.validated_data["user"]
        assert isinstance(user, User)
        token, key = api_token_issue(user=user, request=request._request)
        return Response({"token": key, "expires_at": token.expires_at})

    @extend_schema(
        description=(
            "Revoke the API token this request is sent with: it stops working at once; POST "
            "again for a new one. Signed in with a browser session, revoke all your tokens."
        ),
        request=None,
        responses={204: None, **error_responses(401)},
    )
    def delete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        assert isinstance(request.user, User)
        if isinstance(request.auth, ApiToken):
            api_token_revoke(token=request.auth, request=request._request)
        else:
            api_tokens_revoke(user=request.user, reason="revoked", request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)
