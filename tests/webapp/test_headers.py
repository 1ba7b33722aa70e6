"""Response headers: a Content-Security-Policy everywhere, no-store on patient data, HSTS preload
only when asked for."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from django.test import Client
from django.urls import reverse

from tests.webapp.conftest import api_client, login
from tests.webapp.e2e import REPO_ROOT
from tests.webapp.factories import PredictionFactory

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style(?![^>]*\bnonce=)[^>]*>|\sstyle=\"", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+=\"", re.I)


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


@pytest.fixture
def pages(clinician, reviewer, admin_user):
    prediction = PredictionFactory.create(image__case__created_by=clinician, flagged=True)
    case = prediction.image.case
    return {
        "login": (Client(), reverse("login")),
        "cases": (login(clinician), reverse("cases:list")),
        "case": (login(clinician), reverse("cases:detail", args=[case.pk])),
        "new-case": (login(clinician), reverse("cases:create")),
        "queue": (login(reviewer), reverse("reviews:queue")),
        "password": (login(clinician), reverse("password_change")),
        "admin": (login(admin_user), reverse("admin:index")),
        "admin-login": (Client(), reverse("admin:login")),
        "api-docs": (Client(), reverse("api-docs")),
    }


def test_every_page_has_a_policy_that_allows_only_this_sites_scripts(pages):
    for name, (client, url) in pages.items():
        response = client.get(url)
        assert response.status_code == 200, name
        directives = policy(response)
        assert directives["script-src"] == ["'self'"], name
        assert "'unsafe-inline'" not in directives["style-src"], name
        assert directives["frame-ancestors"] == ["'none'"], name


def test_no_page_of_the_app_has_inline_scripts_or_styles(pages):
    for name, (client, url) in pages.items():
        if name.startswith("admin"):
            continue  # Django's own pages
        html = client.get(url).text
        assert not INLINE_SCRIPT.search(html), name
        assert not INLINE_STYLE.search(html), name
        assert not INLINE_HANDLER.search(html), name


def test_the_api_docs_inline_style_carries_the_policys_nonce():
    response = Client().get(reverse("api-docs"))
    nonce_match = re.search(r"<style nonce=\"([^\"]+)\"", response.text)
    assert nonce_match is not None
    nonce = nonce_match.group(1)
    assert f"'nonce-{nonce}'" in policy(response)["style-src"]
    script_match = re.search(r"<script src=\"([^\"]*\?[^\"]*script[^\"]*)\"", response.text)
    assert script_match is not None
    script = script_match.group(1)
    started = Client().get(script.replace("&amp;", "&"))
    assert started.status_code == 200
    assert started["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in started.text


def test_htmx_is_told_not_to_add_inline_styles_or_evaluate_code(clinician):
    html = login(clinician).get(reverse("cases:list")).text
    assert '"includeIndicatorStyles": false' in html
    assert '"allowEval": false' in html


def test_pages_and_api_answers_with_patient_data_are_not_stored(clinician):
    prediction = PredictionFactory.create(image__case__created_by=clinician)
    image = prediction.image
    browser = login(clinician)
    api = api_client(clinician)
    urls = [
        (browser, reverse("cases:list")),
        (browser, reverse("cases:detail", args=[image.case_id])),
        (browser, reverse("cases:image-file", args=[image.case_id, image.pk])),
        (api, reverse("api:case-list")),
        (api, reverse("api:case-images", args=[image.case_id])),
        (api, reverse("api:image-file", args=[image.case_id, image.pk])),
        (api, reverse("api:prediction-detail", args=[prediction.pk])),
    ]
    for client, url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response["Cache-Control"], url


def _production_setting(name: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DERMATRIAGE_"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "webapp.config.settings", "DJANGO_HTTPS": "true"})
    clean.update({"DJANGO_SECRET_KEY": "x" * 50, **env})
    code = f"from django.conf import settings; print(settings.{name})"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_hsts_preload_is_off_over_https_unless_asked_for():
    assert _production_setting("SECURE_HSTS_PRELOAD") == "False"
    assert _production_setting("SECURE_HSTS_SECONDS") != "0"
    asked = _production_setting("SECURE_HSTS_PRELOAD", DJANGO_SECURE_HSTS_PRELOAD="true")
    assert asked == "True"
