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
from axes.models import AccessAttempt
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
        "review": reverse("cases:review", args=[flagged_case.pk]),
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
    for _ in range(2):
        failed = client.post(reverse("login"), {"username": clinician.username, "password": "x"})
        assert failed.status_code == 200
    locked = client.post(reverse("login"), {"username": clinician.username, "password": "x"})
    assert locked.status_code == 429
    # Even the right password is refused now: guessing cannot continue.
    refused = client.post(reverse("login"), {"username": clinician.username, "password": PASSWORD})
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text
    assert refused["Retry-After"] == str(settings.LOGIN_FAILURE_WINDOW_SECONDS)
    assert "_auth_user_id" not in client.session
    token = api_client(None).post(
        reverse("api:token"), {"username": clinician.username, "password": PASSWORD}
    )
    assert token.status_code == 429
    assert token.json()["error"]["code"] == "throttled"
    assert token["Retry-After"] == str(settings.LOGIN_FAILURE_WINDOW_SECONDS)


def test_the_admin_sign_in_is_refused_after_five_wrong_passwords(admin_user):
    client = Client()
    answers = [
        client.post(reverse("admin:login"), {"username": admin_user.username, "password": "x"})
        for _ in range(5)
    ]
    assert [answer.status_code for answer in answers] == [200] * 4 + [429]
    right = client.post(
        reverse("admin:login"), {"username": admin_user.username, "password": PASSWORD}
    )
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_failures_on_every_way_in_count_towards_one_throttle(settings, clinician):
    settings.LOGIN_FAILURE_LIMIT = 3
    wrong = {"username": clinician.username, "password": "x"}
    assert Client().post(reverse("login"), wrong).status_code == 200
    assert Client().post(reverse("admin:login"), wrong).status_code == 200
    assert api_client(None).post(reverse("api:token"), wrong).status_code == 429
    right = {"username": clinician.username, "password": PASSWORD}
    assert Client().post(reverse("login"), right).status_code == 429
    assert Client().post(reverse("admin:login"), right).status_code == 429
    assert api_client(None).post(reverse("api:token"), right).status_code == 429


def test_the_throttle_lifts_once_failures_leave_the_window(settings, clinician):
    settings.LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        Client().post(reverse("login"), {"username": clinician.username, "password": "x"})
    # Time passing, simulated.
    old = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS + 1)
    AccessAttempt.objects.update(attempt_time=old)
    response = Client().post(
        reverse("login"), {"username": clinician.username, "password": PASSWORD}
    )
    assert response.status_code == 302


def test_an_admin_lifts_a_lockout_in_the_admin(settings, clinician, admin_user):
    settings.LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        Client().post(reverse("login"), {"username": clinician.username, "password": "x"})
    right = {"username": clinician.username, "password": PASSWORD}
    assert Client().post(reverse("login"), right).status_code == 429
    admin = login(admin_user)
    assert admin.get(reverse("admin:axes_accessattempt_changelist")).status_code == 200
    attempt = AccessAttempt.objects.get()
    deleted = admin.post(
        reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert Client().post(reverse("login"), right).status_code == 302


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
    answers = [
        client.post(reverse("login"), {"username": f"guess{number}", "password": "x"})
        for number in range(4)
    ]
    assert [answer.status_code for answer in answers] == [200] * 3 + [429]
    assert client.post(reverse("login"), {"username": "other", "password": "x"}).status_code == 429
    # Each attempt is in the audit history, the refused ones too.
    assert AuditEvent.objects.filter(action=AuditAction.USER_LOGIN_FAILED).count() == 5


def test_behind_a_trusted_proxy_each_client_is_throttled_on_its_own_address(settings):
    settings.LOGIN_IP_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURE_LIMIT = 10  # only the address limit is under test
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = Client(REMOTE_ADDR="10.0.0.2")

    def sign_in(client_address: str, forged: str = "") -> int:
        # What the proxy forwards: whatever the client sent, then the address it saw.
        chain = f"{forged}, {client_address}" if forged else client_address
        return proxy.post(
            reverse("login"), {"username": "guess", "password": "x"}, HTTP_X_FORWARDED_FOR=chain
        ).status_code

    # A guesser spreading failures over invented addresses is still counted under its own.
    attempts = [sign_in("203.0.113.7", forged=f"198.51.100.{n}") for n in range(3)]
    assert attempts == [200, 200, 429]
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


def test_logging_out_says_so_in_the_sites_layout(clinician):
    client = login(clinician)
    response = client.post(reverse("logout"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "You are logged out." in text
    assert 'data-testid="disclaimer"' in text
    # Signed out for real: the next page asks to sign in.
    assert client.get(reverse("cases:list")).status_code == 302
