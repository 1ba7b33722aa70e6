"""The /health/ endpoint and `manage.py health`: real database, real Redis, the served artifact."""

from __future__ import annotations

import json
import shutil

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from benchmarks.support import free_port
from tests.webapp.conftest import login
from tests.webapp.e2e import served_model_dir
from tests.webapp.faults import celery_broker
from webapp.health import checks as health

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_dir():
    return served_model_dir()


# Requests from the machine itself count as its own probes; a stranger comes from elsewhere.
STRANGER = "203.0.113.9"


def stranger() -> Client:
    return Client(REMOTE_ADDR=STRANGER)


@pytest.fixture
def staff(admin_user):
    client = login(admin_user)
    client.defaults["REMOTE_ADDR"] = STRANGER
    return client


def test_it_answers_ok_without_a_session_when_everything_is_up(model_dir, settings):
    if settings.USING_EMBEDDED_BROKER:
        pytest.skip("needs the Redis broker (run through scripts/test.sh)")
    response = stranger().get(reverse("health"))
    assert response.status_code == 200, response.content
    # The status alone: the details name hosts, ports and paths.
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")


def test_staff_get_every_components_detail(model_dir, settings, staff):
    if settings.USING_EMBEDDED_BROKER:
        pytest.skip("needs the Redis broker (run through scripts/test.sh)")
    body = staff.get(reverse("health")).json()
    assert body["status"] == "ok"
    assert set(body["components"]) == {"database", "broker", "model"}
    assert body["components"]["model"]["extra"]["version"]


def test_the_health_token_gets_the_details(settings, monkeypatch, tmp_path):
    settings.HEALTH_TOKEN = "probe-secret"
    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(tmp_path / "nowhere"))
    url = reverse("health")
    with_token = stranger().get(url, headers={"Authorization": "Bearer probe-secret"})
    assert "components" in with_token.json()
    wrong = stranger().get(url, headers={"Authorization": "Bearer guess"})
    assert set(wrong.json()) == {"status"}


def test_anonymous_callers_cannot_make_it_ask_the_workers(monkeypatch, clinician):
    asked = []
    monkeypatch.setattr(health, "health_workers", lambda: asked.append(1))
    signed_in = login(clinician)
    signed_in.defaults["REMOTE_ADDR"] = STRANGER
    for client in (stranger(), signed_in):
        response = client.get(reverse("health"), {"workers": "1"})
        assert "components" not in response.json()
    assert asked == []


def test_staff_may_ask_the_workers(monkeypatch, staff):
    monkeypatch.setattr(
        health, "health_workers", lambda: health.ComponentHealth(ok=False, detail="asked")
    )
    body = staff.get(reverse("health"), {"workers": "1"}).json()
    assert body["components"]["workers"]["detail"] == "asked"


def test_a_probe_on_the_machine_itself_gets_the_details_unless_it_came_through_a_proxy(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(tmp_path / "nowhere"))
    local = Client(REMOTE_ADDR="127.0.0.1")
    assert "components" in local.get(reverse("health")).json()
    proxied = local.get(reverse("health"), headers={"X-Forwarded-For": "198.51.100.4"})
    assert set(proxied.json()) == {"status"}


def test_the_probe_networks_are_a_setting(settings, monkeypatch, tmp_path):
    import ipaddress

    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(tmp_path / "nowhere"))
    settings.HEALTH_PROBE_NETWORKS = [ipaddress.ip_network("203.0.113.0/24")]
    assert "components" in stranger().get(reverse("health")).json()
    assert set(Client().get(reverse("health")).json()) == {"status"}


def test_an_unhealthy_answer_says_when_to_retry(monkeypatch, tmp_path):
    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(tmp_path / "nowhere"))
    response = stranger().get(reverse("health"))
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert int(response["Retry-After"]) > 0


def test_it_reports_a_missing_model_artifact(monkeypatch, tmp_path, staff):
    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(tmp_path / "nowhere"))
    response = staff.get(reverse("health"))
    assert response.status_code == 503
    model = response.json()["components"]["model"]
    assert model["ok"] is False
    assert "does not exist" in model["detail"]


def test_it_reports_a_corrupt_model_file(monkeypatch, tmp_path, model_dir, staff):
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(model_dir / "metadata.json", broken / "metadata.json")
    metadata = json.loads((broken / "metadata.json").read_text())
    (broken / metadata.get("model_file", "model.keras")).write_bytes(b"not a model")
    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(broken))
    response = staff.get(reverse("health"))
    assert response.status_code == 503
    assert "corrupt" in response.json()["components"]["model"]["detail"]


def test_it_reports_an_unreachable_broker(model_dir, staff):
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):
        response = staff.get(reverse("health"))
    assert response.status_code == 503
    body = response.json()["components"]
    assert body["broker"]["ok"] is False
    assert body["database"]["ok"] is True


def test_the_command_exits_non_zero_when_unhealthy(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit) as exit_info:
        call_command("health")
    assert exit_info.value.code == 1
    assert json.loads(capsys.readouterr().out)["components"]["model"]["ok"] is False


def test_the_command_reports_a_worker_that_does_not_answer(settings, capsys):
    if settings.USING_EMBEDDED_BROKER:
        pytest.skip("needs the Redis broker (run through scripts/test.sh)")
    with pytest.raises(SystemExit):
        call_command("health", worker="celery@no-such-worker", timeout=0.5)
    assert json.loads(capsys.readouterr().out)["detail"] == "no answer"
