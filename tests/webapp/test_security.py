"""CSRF on every form, cookie and session settings, sign-in throttling, revocable API tokens,
and `manage.py check --deploy` under the production settings."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.webapp.conftest import api_client, login
from tests.webapp.e2e import REPO_ROOT
from tests.webapp.factories import PASSWORD
from webapp.accounts.services import client_ip
from webapp.audit.models import AuditAction, AuditEvent

pytestmark = pytest.mark.django_db

POST_FORM = re.compile(r"<form[^>]*method=\"post\"[^>]*>(.*?)</form>", re.S | re.I)


def forms_of(html: str) -> list[str]:
    return POST_FORM.findall(html)


@pytest.mark.parametrize(
    ("page", "role"),
    [
        ("login", None),
        ("case-create", "clinician"),
        ("case-detail-clinician", "clinician"),
        ("case-detail-reviewer", "reviewer"),
        ("queue", "reviewer"),
        ("password-change", "clinician"),
    ],
)
def test_every_post_form_carries_a_csrf_token(page, role, flagged_case, clinician, reviewer):
    urls = {
        "login": reverse("login"),
        "case-create": reverse("cases:create"),
        "case-detail-clinician": reverse("cases:detail", args=[flagged_case.pk]),
        "case-detail-reviewer": reverse("cases:detail", args=[flagged_case.pk]),
        "queue": reverse("reviews:queue"),
        "password-change": reverse("password_change"),
    }
    user = {"clinician": clinician, "reviewer": reviewer, None: None}[role]
    client = login(user) if user else Client()
    html = client.get(urls[page]).text
    forms = forms_of(html)
    if page != "queue":
        assert forms, f"no POST form on {page}"
    for form in forms:
        assert 'name="csrfmiddlewaretoken"' in form


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("login", None),
        ("logout", "clinician"),
        ("case-create", "clinician"),
        ("upload", "clinician"),
        ("review", "reviewer"),
        ("password-change", "clinician"),
    ],
)
def test_every_form_refuses_a_post_without_its_csrf_token(
    name, role, flagged_case, clinician, reviewer
):
    urls = {
        "login": reverse("login"),
        "logout": reverse("logout"),
        "case-create": reverse("cases:create"),
        "upload": reverse("cases:upload", args=[flagged_case.pk]),
        "review": reverse("reviews:create", args=[flagged_case.pk]),
        "password-change": reverse("password_change"),
    }
    client = Client(enforce_csrf_checks=True)
    user = {"clinician": clinician, "reviewer": reviewer, None: None}[role]
    if user is not None:
        client.force_login(user)
    response = client.post(urls[name], {"username": "x", "password": "y"})
    assert response.status_code == 403


def test_a_browser_session_cannot_post_to_the_api_without_csrf(clinician):
    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    response = client.post(
        reverse("api:case-list"), {"subject_ref": "X", "body_site": "other"}, "application/json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_cookies_are_http_only_and_same_site(clinician):
    client = Client()
    response = client.post(reverse("login"), {"username": clinician.username, "password": PASSWORD})
    session = response.cookies["sessionid"]
    assert session["httponly"]
    assert session["samesite"] == "Lax"
    assert session["max-age"] == ""  # ends with the browser


def test_sign_ins_are_refused_after_repeated_failures(settings, clinician):
    settings.LOGIN_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(3):
        failed = client.post(reverse("login"), {"username": clinician.username, "password": "x"})
        assert failed.status_code == 200
    # Even the right password is refused now: guessing cannot continue.
    refused = client.post(reverse("login"), {"username": clinician.username, "password": PASSWORD})
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text
    assert "_auth_user_id" not in client.session
    token = api_client(None).post(
        reverse("api:token"), {"username": clinician.username, "password": PASSWORD}
    )
    assert token.status_code == 429
    assert token.json()["error"]["code"] == "throttled"


def test_the_throttle_lifts_once_failures_leave_the_window(settings, clinician):
    settings.LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        Client().post(reverse("login"), {"username": clinician.username, "password": "x"})
    old = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS + 1)
    # Backdating goes around the history's own guard on purpose: time passing, simulated.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET created_at = %s WHERE action = %s",
            [old, AuditAction.USER_LOGIN_FAILED.value],
        )
    response = Client().post(
        reverse("login"), {"username": clinician.username, "password": PASSWORD}
    )
    assert response.status_code == 302


@pytest.mark.parametrize("username", ["nul\x00name", "\x00", "«\x02"])
def test_a_username_with_control_characters_is_refused_not_a_server_error(username, clinician):
    token = api_client(None).post(reverse("api:token"), {"username": username, "password": "x"})
    assert token.status_code == 400
    form = Client().post(reverse("login"), {"username": username, "password": "x"})
    assert form.status_code in (200, 400)
    recorded = AuditEvent.objects.filter(action=AuditAction.USER_LOGIN_FAILED)
    assert all("\x00" not in event.data["username"] for event in recorded)


def test_one_address_guessing_many_usernames_is_throttled(settings):
    settings.LOGIN_IP_FAILURE_LIMIT = 4
    client = Client()
    for number in range(4):
        client.post(reverse("login"), {"username": f"guess{number}", "password": "x"})
    assert client.post(reverse("login"), {"username": "other", "password": "x"}).status_code == 429
    assert AuditEvent.objects.filter(action=AuditAction.USER_LOGIN_FAILED).count() == 4


def test_behind_a_trusted_proxy_each_client_is_throttled_on_its_own_address(settings):
    settings.LOGIN_IP_FAILURE_LIMIT = 3
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = Client(REMOTE_ADDR="10.0.0.2")

    def sign_in(client_address: str, forged: str = "") -> int:
        # What the proxy forwards: whatever the client sent, then the address it saw.
        chain = f"{forged}, {client_address}" if forged else client_address
        return proxy.post(
            reverse("login"), {"username": "guess", "password": "x"}, HTTP_X_FORWARDED_FOR=chain
        ).status_code

    # A guesser spreading failures over invented addresses is still counted under its own.
    assert [sign_in("203.0.113.7", forged=f"198.51.100.{n}") for n in range(3)] == [200] * 3
    assert sign_in("203.0.113.7", forged="198.51.100.99") == 429
    # Everyone else behind the same proxy can still sign in.
    assert sign_in("203.0.113.8") == 200
    recorded = AuditEvent.objects.filter(action=AuditAction.USER_LOGIN_FAILED)
    assert {event.data["ip"] for event in recorded} == {"203.0.113.7", "203.0.113.8"}


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.7", "10.0.0.2"),  # no proxy configured: the header is anyone's to forge
        (1, "198.51.100.1, 203.0.113.7", "203.0.113.7"),
        (2, "198.51.100.1, 203.0.113.7, 10.0.0.9", "203.0.113.7"),
        (2, "203.0.113.7", "10.0.0.2"),  # fewer entries than proxies: not through all of them
        (1, "", "10.0.0.2"),
        (1, "not-an-address", "10.0.0.2"),
        (1, " 2001:db8::1 ", "2001:db8::1"),
    ],
)
def test_the_client_address_is_read_as_many_entries_from_the_right_as_there_are_proxies(
    settings, rf, proxies, forwarded, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_a_revoked_token_stops_working_at_once(clinician):
    client = api_client(None)
    token = client.post(
        reverse("api:token"), {"username": clinician.username, "password": PASSWORD}
    ).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(reverse("api:case-list")).status_code == 200
    assert client.delete(reverse("api:token")).status_code == 204
    assert client.get(reverse("api:case-list")).status_code == 401
    # A new sign-in issues a different token.
    fresh = api_client(None).post(
        reverse("api:token"), {"username": clinician.username, "password": PASSWORD}
    )
    assert fresh.json()["token"] != token


def test_revoking_needs_a_signed_in_client():
    assert api_client(None).delete(reverse("api:token")).status_code == 401


def test_check_deploy_is_clean_under_the_production_settings():
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DERMATRIAGE_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "webapp.config.settings",
            "DJANGO_HTTPS": "true",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "dermatriage.example.org",
            "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://u@127.0.0.1/dermatriage"),
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
