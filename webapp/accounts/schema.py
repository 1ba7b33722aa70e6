"""How the OpenAPI schema describes the API's authentication (a drf-spectacular extension)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "webapp.accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"
    # Above drf-spectacular's own extension for TokenAuthentication and its subclasses.
    priority = 1

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        definition: dict[str, Any] = build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106 (the scheme's name, not a secret)
        )
        definition["description"] = "The API token as a bearer token: `Bearer <token>`."
        return definition
