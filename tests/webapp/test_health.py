"""The /health/ endpoint and `manage.py health`: real database, real Redis, the served artifact."""

from __future__ import annotations

import json
import shutil

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from benchmarks.support import free_port
from tests.webapp.e2e import served_model_dir
from tests.webapp.faults import celery_broker

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_dir():
    return served_model_dir()


def test_it_answers_ok_without_a_session_when_everything_is_up(model_dir, settings):
    if settings.USING_EMBEDDED_BROKER:
        pytest.skip("needs the Redis broker (run through scripts/test.sh)")
    response = Client().get(reverse("health"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["components"]) == {"database", "broker", "model"}
    assert body["components"]["model"]["extra"]["version"]
    assert response["Cache-Control"].startswith("max-age=0")


def test_it_reports_a_missing_model_artifact(monkeypatch, tmp_path):
    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(tmp_path / "nowhere"))
    response = Client().get(reverse("health"))
    assert response.status_code == 503
    model = response.json()["components"]["model"]
    assert model["ok"] is False
    assert "does not exist" in model["detail"]


def test_it_reports_a_corrupt_model_file(monkeypatch, tmp_path, model_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(model_dir / "metadata.json", broken / "metadata.json")
    metadata = json.loads((broken / "metadata.json").read_text())
    (broken / metadata.get("model_file", "model.keras")).write_bytes(b"not a model")
    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(broken))
    response = Client().get(reverse("health"))
    assert response.status_code == 503
    assert "corrupt" in response.json()["components"]["model"]["detail"]


def test_it_reports_an_unreachable_broker(model_dir):
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):
        response = Client().get(reverse("health"))
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
