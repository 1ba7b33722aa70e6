from __future__ import annotations

from django.utils import timezone

from webapp.accounts.models import ApiToken


def username_for_audit(raw: object) -> str:
    """The form a typed username is recorded and counted under in the audit history.

    Lower-cased and trimmed so "Alice " and "alice" share one failure count; NUL characters are
    dropped because PostgreSQL's JSON type cannot hold them (a probing client sends them).
    """
    return str(raw or "").replace("\x00", "")[:150].strip().lower()


def api_token_for_key(*, key: str) -> ApiToken | None:
    """The unexpired API token with this key, with its user; None if there is none."""
    return (
        ApiToken.objects.select_related("user")
        .filter(digest=ApiToken.digest_of(key), expires_at__gt=timezone.now())
        .first()
    )
