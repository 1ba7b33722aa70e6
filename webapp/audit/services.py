from __future__ import annotations

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
