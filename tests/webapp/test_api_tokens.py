"""API tokens: kept as digests, shown once, expiring, and revoked with a password change."""

from __future__ import annotations

import hashlib
import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from tests.webapp.conftest import api_client, login
from tests.webapp.factories import PASSWORD
from webapp.accounts.models import ApiToken
from webapp.audit.models import AuditAction, AuditEvent

pytestmark = pytest.mark.django_db


def issue(user) -> dict:
    response = api_client(None).post(
        reverse("api:token"), {"username": user.username, "password": PASSWORD}
    )
    assert response.status_code == 200
    return response.json()


def authenticated(key: str, scheme: str = "Token") -> int:
    client = api_client(None)
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client.get(reverse("api:case-list")).status_code


def test_it_stores_only_a_digest_of_the_key(clinician):
    key = issue(clinician)["token"]
    stored = ApiToken.objects.get(user=clinician)
    assert stored.digest == hashlib.sha256(key.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apitoken")
        assert key not in repr(cursor.fetchall())
    assert authenticated(key) == 200
    assert authenticated(key, "Bearer") == 200


def test_each_sign_in_issues_a_new_token_and_the_old_ones_keep_working(clinician):
    first, second = issue(clinician)["token"], issue(clinician)["token"]
    assert first != second
    assert authenticated(first) == 200
    assert authenticated(second) == 200


def test_a_token_expires_after_the_configured_days(settings, clinician):
    settings.API_TOKEN_TTL_DAYS = 7
    issued = issue(clinician)
    token = ApiToken.objects.get(user=clinician)
    assert abs(token.expires_at - timezone.now() - timedelta(days=7)) < timedelta(minutes=1)
    assert issued["expires_at"]
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api_client(None)
    response.credentials(HTTP_AUTHORIZATION=f"Token {issued['token']}")
    refused = response.get(reverse("api:case-list"))
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]


def test_a_password_change_revokes_the_users_tokens(clinician):
    key = issue(clinician)["token"]
    changed = login(clinician).post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a-new-Passphrase-42",
            "new_password2": "a-new-Passphrase-42",
        },
    )
    assert changed.status_code == 302
    assert authenticated(key) == 401
    revoked = AuditEvent.objects.get(action=AuditAction.TOKEN_REVOKED)
    assert revoked.data["reason"] == "password-changed"


def test_a_password_set_by_an_admin_revokes_the_users_tokens(clinician):
    key = issue(clinician)["token"]
    clinician.set_password("another-Passphrase-42")
    clinician.save()
    assert authenticated(key) == 401


def test_other_changes_to_a_user_keep_the_tokens(clinician):
    key = issue(clinician)["token"]
    clinician.first_name = "Renamed"
    clinician.save()
    assert authenticated(key) == 200


def test_revoking_ends_only_the_token_in_use(clinician):
    kept, revoked = issue(clinician)["token"], issue(clinician)["token"]
    client = api_client(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {revoked}")
    assert client.delete(reverse("api:token")).status_code == 204
    assert authenticated(revoked) == 401
    assert authenticated(kept) == 200


def test_revoking_from_a_browser_session_ends_every_token(clinician):
    key = issue(clinician)["token"]
    client = api_client(None)
    client.force_authenticate(clinician)
    assert client.delete(reverse("api:token")).status_code == 204
    assert authenticated(key) == 401


def test_the_migration_carries_clear_tokens_over_as_digests(clinician):
    migration = importlib.import_module("webapp.accounts.migrations.0002_api_tokens")
    key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        # The table DRF's authtoken app kept; inside the test's transaction, so it goes again.
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamptz NOT NULL, user_id bigint NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)", [key, timezone.now(), clinician.pk]
        )
    with connection.schema_editor() as editor:
        migration.carry_over_clear_tokens(apps, editor)
    assert authenticated(key) == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)
