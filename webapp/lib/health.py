"""The database check that the web's health report and each worker's own health share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection


@dataclass(frozen=True)
class ComponentHealth:
    ok: bool
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)


def health_database() -> ComponentHealth:
    """One round trip to the database."""
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        # The connection may be half-dead; drop it so the next request starts afresh.
        connection.close_if_unusable_or_obsolete()
        return ComponentHealth(ok=False, detail=f"{type(exc).__name__}: {exc}".strip())
    return ComponentHealth(ok=True, detail="ok")
