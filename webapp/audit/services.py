from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from webapp.audit.models import AuditAction, AuditEvent

if TYPE_CHECKING:
    from webapp.accounts.models import User
    from webapp.cases.models import Case


def audit_record(
    *,
    action: AuditAction,
    actor: User | None,
    case: Case | None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the history."""
    return AuditEvent.objects.create(action=action, actor=actor, case=case, data=data or {})


@dataclass(frozen=True)
class PendingAuditEvent:
    """An event to append with others in one statement (see `audit_record_many`)."""

    action: AuditAction
    case: Case | None
    actor: User | None = None
    data: dict[str, Any] = field(default_factory=dict)


def audit_record_many(events: Sequence[PendingAuditEvent]) -> list[AuditEvent]:
    """Append several events with one INSERT, in order (a worker settling a batch of scores)."""
    return AuditEvent.objects.bulk_create(
        AuditEvent(action=e.action, actor=e.actor, case=e.case, data=e.data) for e in events
    )
