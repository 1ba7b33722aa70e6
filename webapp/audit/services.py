from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Model

from webapp.audit.models import AuditAction, AuditEvent

# The history sits below the apps that record into it and knows their rows only as models: the
# actor is a settings.AUTH_USER_MODEL, the case a cases.Case, and an event keeps their keys.


def _key(row: Model | None) -> Any:
    return None if row is None else row.pk


def audit_record(
    *,
    action: AuditAction,
    actor: AbstractBaseUser | None,
    case: Model | None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the history."""
    return AuditEvent.objects.create(
        action=action, actor_id=_key(actor), case_id=_key(case), data=data or {}
    )


@dataclass(frozen=True)
class PendingAuditEvent:
    """An event to append with others in one statement (see `audit_record_many`)."""

    action: AuditAction
    case: Model | None
    actor: AbstractBaseUser | None = None
    data: dict[str, Any] = field(default_factory=dict)


def audit_record_many(events: Sequence[PendingAuditEvent]) -> list[AuditEvent]:
    """Append several events with one INSERT, in order (a worker settling a batch of scores)."""
    return AuditEvent.objects.bulk_create(
        AuditEvent(action=e.action, actor_id=_key(e.actor), case_id=_key(e.case), data=e.data)
        for e in events
    )


def audit_record_list_view(
    *,
    action: AuditAction,
    viewer: AbstractBaseUser,
    via: str,
    case_ids: Sequence[int],
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event for a list someone read, naming its cases (never one per row)."""
    return audit_record(
        action=action,
        actor=viewer,
        case=None,
        data={"via": via, "case_ids": list(dict.fromkeys(case_ids)), **(data or {})},
    )


def audit_record_denial(
    *,
    actor: AbstractBaseUser | None,
    via: str,
    method: str,
    path: str,
    status: int,
    case: Model | None = None,
    case_id: int | None = None,
) -> AuditEvent:
    """Append a refused request: who (None when not signed in) asked for what, and the answer.

    A refused read of an existing case joins that case's history (`case`), so its owner can see
    who tried; an id with no case behind it stays in the data alone (`case_id`).
    """
    data: dict[str, Any] = {"via": via, "method": method, "path": path, "status": status}
    if case_id is not None:
        data["case_id"] = case_id
    return audit_record(action=AuditAction.ACCESS_DENIED, actor=actor, case=case, data=data)
