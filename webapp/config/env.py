"""Typed readers for settings that come from the environment.

An unset and an empty variable mean the same (use the default), so .env.example can list
every variable with an empty value.

Each reader fails loudly on a malformed value: a typo in a deployment's env file should stop
the process at start-up, not quietly fall back to a default.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str) -> str:
    """Return the variable as a string, or the default when unset or empty."""
    value = _raw(name)
    return value if value else default


def env_optional_str(name: str) -> str | None:
    """Return the variable as a string, or None when unset or empty."""
    value = _raw(name)
    return value or None


def env_bool(name: str, default: bool) -> bool:
    """Return the variable as a boolean; only the usual spellings are accepted."""
    value = _raw(name)
    if not value:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false).")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """Return the variable as an integer, checked against an optional lower bound."""
    value = _raw(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from exc
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated variable as a list of non-empty, stripped items."""
    value = _raw(name)
    if not value:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]
