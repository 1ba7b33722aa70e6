from __future__ import annotations


def username_for_audit(raw: object) -> str:
    """The form a typed username is recorded and counted under in the audit history.

    Lower-cased and trimmed so "Alice " and "alice" share one failure count; NUL characters are
    dropped because PostgreSQL's JSON type cannot hold them (a probing client sends them).
    """
    return str(raw or "").replace("\x00", "")[:150].strip().lower()
