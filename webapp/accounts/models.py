from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Clinician"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Admin"


class User(AbstractUser):
    """A person who signs in; what they may see and do follows from their role."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CLINICIAN)

    def __str__(self) -> str:
        return self.username

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Every way of changing a password (the form, the admin, a command, a service) ends in
        # set_password() and save(); the API tokens issued under the old one must die with it.
        password_changed = getattr(self, "_password", None) is not None and not self._state.adding
        super().save(*args, **kwargs)
        if password_changed:
            from webapp.accounts.services import api_tokens_revoke

            api_tokens_revoke(user=self, reason="password-changed")


class ApiToken(models.Model):
    """An API token. Only a digest of its key is stored; the key is shown once, when issued."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    # sha256 of the key, hex. The key is random (160 bits), so a fast digest is enough: there
    # is nothing to guess that a slow hash would protect.
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="apitoken_user_expires_idx")]

    def __str__(self) -> str:
        return f"API token of {self.user} (expires {self.expires_at:%Y-%m-%d %H:%M})"

    @staticmethod
    def digest_of(key: str) -> str:
        """The digest a key is stored and looked up under."""
        return hashlib.sha256(key.encode()).hexdigest()
