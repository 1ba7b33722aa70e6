"""Faults with real processes: a worker killed mid-task, Redis down, PostgreSQL restarted,
a missing or corrupt model. Nothing is lost and nothing is scored twice.

Each test that runs a worker gives it a queue of its own (and, for the Redis outage, a
redis-server of its own), so the shared session worker and other test runs are never
disturbed. The PostgreSQL test restarts the shared server briefly and always starts it again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client
from django.urls import reverse

from benchmarks.support import free_port
from tests.webapp.conftest import api_client, login
from tests.webapp.e2e import celery_worker, served_model_dir, wait_for, worker_database_url
from tests.webapp.factories import CaseFactory, ClinicianFactory, PredictionFactory, jpeg_bytes
from tests.webapp.faults import celery_broker, private_queue, throwaway_redis
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import Image
from webapp.scoring.models import Prediction, PredictionStatus
from webapp.scoring.services import scoring_wake

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCORING_TIMEOUT = 180  # a fresh worker imports TensorFlow and loads the model first


@pytest.fixture
def fault_env(settings, transactional_db, tmp_path):
    """Committed rows, uploads where a worker reads them, and a queue no other worker takes."""
    if settings.USING_EMBEDDED_BROKER:
        pytest.skip("fault tests need the Redis broker (run them through scripts/test.sh)")
    settings.MEDIA_ROOT = tmp_path / "media"
    with private_queue(settings) as queue:
        yield {"queue": queue, "media": settings.MEDIA_ROOT, "logs": tmp_path}


def upload(client, case_id: int, content: bytes | None = None):
    files = [SimpleUploadedFile("lesion.jpg", content or jpeg_bytes(), "image/jpeg")]
    return client.post(
        reverse("api:case-images", args=[case_id]), {"files": files}, format="multipart"
    )


def sweeping_worker(fault_env, *, broker_url: str | None = None, **settings: str):
    """A real worker that also runs beat, whose periodic wake-up drains what is due, with
    scoring settings in `settings` (DERMATRIAGE_ names)."""
    return celery_worker(
        media_root=fault_env["media"],
        log_dir=fault_env["logs"],
        queue=fault_env["queue"],
        extra_env={"DERMATRIAGE_SCORING_WAKE_INTERVAL": "2", **settings},
        extra_args=["--beat", f"--schedule={fault_env['logs'] / 'beat-schedule'}"],
        broker_url=broker_url,
    )


def scored_events(prediction_id: int) -> int:
    return AuditEvent.objects.filter(
        action=AuditAction.PREDICTION_SCORED, data__prediction_id=prediction_id
    ).count()


@contextmanager
def case_row_locked(case_id: int) -> Iterator[None]:
    """Hold a lock on a case row from another connection until the block ends.

    Recording a score inserts an audit event referencing the case, which must wait for this
    lock: the worker is then stopped inside its scoring transaction, result in hand and not
    yet committed, the worst moment for it to die.
    """
    import psycopg

    with psycopg.connect(worker_database_url()) as holder:
        holder.execute("SELECT id FROM cases_case WHERE id = %s FOR UPDATE", (case_id,))
        try:
            yield
        finally:
            holder.rollback()


def someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()"
        )
        (waiting,) = cursor.fetchone()
    return bool(waiting)


def test_a_worker_killed_mid_scoring_leaves_the_prediction_to_be_scored_exactly_once(
    fault_env, capsys
):
    prediction = PredictionFactory.create()
    with (
        celery_worker(
            media_root=fault_env["media"],
            log_dir=fault_env["logs"],
            queue=fault_env["queue"],
            extra_env={"DERMATRIAGE_SCORING_STALE_AFTER": "10"},
        ) as first,
        case_row_locked(prediction.image.case_id),
    ):
        assert scoring_wake()
        wait_for(
            someone_waits_for_a_lock,
            timeout=SCORING_TIMEOUT,
            what="the worker to reach the end of scoring",
            worker=first,
        )
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    # The dead worker's transaction is rolled back once its server process notices.
    wait_for(lambda: not someone_waits_for_a_lock(), timeout=30, what="the rollback")

    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.RUNNING
    assert scored_events(prediction.pk) == 0

    # A replacement worker with beat: nobody acts; the abandoned claim goes stale and a periodic
    # wake-up takes it back.
    with sweeping_worker(fault_env, DERMATRIAGE_SCORING_STALE_AFTER="10") as second:

        def done() -> bool:
            return Prediction.objects.get(pk=prediction.pk).status == PredictionStatus.DONE

        wait_for(done, timeout=SCORING_TIMEOUT, what="the re-queued scoring", worker=second)
        # The worker's own health, as an orchestrator's probe asks it: model loaded, database up.
        call_command("health", worker=second.name)
        health = json.loads(capsys.readouterr().out)
        assert health["status"] == "ok"
        assert health["model_loaded_in_this_process"] is True
        # Let any duplicate delivery run before counting.
        time.sleep(3)

    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.DONE
    assert prediction.attempts == 2
    assert scored_events(prediction.pk) == 1


def test_every_image_of_an_upload_ends_scored_when_the_worker_is_killed_mid_batch(
    fault_env, tmp_path
):
    """Rows claimed into a dead worker's batch are reclaimed, not left running for good.

    The upload is made during a broker blip, so that no wake-up of its own ever reaches a
    worker: the rows are found through the queue alone.
    """
    clinician = ClinicianFactory.create()
    case = CaseFactory.create(created_by=clinician)
    client = api_client(clinician)
    files = [
        SimpleUploadedFile(f"lesion-{index}.jpg", jpeg_bytes(), "image/jpeg") for index in range(10)
    ]
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):
        response = client.post(
            reverse("api:case-images", args=[case.pk]), {"files": files}, format="multipart"
        )
    assert response.status_code == 201, response.content
    predictions = list(Prediction.objects.filter(image__case=case).order_by("pk"))
    assert len(predictions) == 10

    with (
        celery_worker(
            media_root=fault_env["media"],
            log_dir=fault_env["logs"],
            queue=fault_env["queue"],
            extra_env={"DERMATRIAGE_SCORING_STALE_AFTER": "10"},
        ) as first,
        case_row_locked(case.pk),
    ):
        # The broker is back: a wake-up reaches the worker, which claims the whole upload into
        # its batch and is killed before it can record the scores.
        assert scoring_wake()
        wait_for(
            someone_waits_for_a_lock,
            timeout=SCORING_TIMEOUT,
            what="the worker to reach the end of its batch",
            worker=first,
        )
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    wait_for(lambda: not someone_waits_for_a_lock(), timeout=30, what="the rollback")
    running = Prediction.objects.filter(image__case=case, status=PredictionStatus.RUNNING)
    assert running.count() == 10

    with sweeping_worker(fault_env, DERMATRIAGE_SCORING_STALE_AFTER="10") as second:

        def settled() -> bool:
            return not Prediction.objects.filter(
                image__case=case,
                status__in=[PredictionStatus.PENDING, PredictionStatus.RUNNING],
            ).exists()

        wait_for(settled, timeout=SCORING_TIMEOUT, what="every image to be scored", worker=second)
        time.sleep(3)  # a duplicate task, had one been queued, would run now

    for prediction in Prediction.objects.filter(image__case=case):
        if prediction.status == PredictionStatus.FAILED:
            assert prediction.error_message
        else:
            assert prediction.status == PredictionStatus.DONE
            assert scored_events(prediction.pk) == 1


def test_an_upload_while_redis_is_down_is_stored_and_scored_once_redis_is_back(fault_env, tmp_path):
    clinician = ClinicianFactory.create()
    case = CaseFactory.create(created_by=clinician)
    client = api_client(clinician)
    with (
        throwaway_redis(tmp_path) as redis,
        celery_broker(redis.url),
        sweeping_worker(fault_env, broker_url=redis.url) as worker,
    ):
        redis.stop()
        started = time.monotonic()
        response = upload(client, case.pk)
        upload_seconds = time.monotonic() - started
        assert response.status_code == 201, response.content
        prediction = Prediction.objects.get(image__case=case)
        assert prediction.status == PredictionStatus.PENDING
        stored = Image.objects.get(case=case).file
        assert stored.name
        assert stored.storage.exists(stored.name)
        assert upload_seconds < 5  # the dead broker is not waited for

        redis.start()  # same port: the worker, beat and this process reconnect

        def done() -> bool:
            return Prediction.objects.get(pk=prediction.pk).status == PredictionStatus.DONE

        wait_for(done, timeout=SCORING_TIMEOUT, what="scoring after the outage", worker=worker)
        # The worker answers the health endpoint's question with its model loaded.
        health = Client().get(reverse("health"), {"workers": "1"}).json()
        assert health["components"]["workers"]["ok"] is True
        time.sleep(3)  # a duplicate task, had one been queued, would run now

    prediction.refresh_from_db()
    assert prediction.attempts == 1
    assert scored_events(prediction.pk) == 1


def test_an_upload_while_redis_hangs_is_answered_at_once_kept_and_scored_later(fault_env, tmp_path):
    clinician = ClinicianFactory.create()
    case = CaseFactory.create(created_by=clinician)
    client = api_client(clinician)
    with (
        throwaway_redis(tmp_path) as redis,
        celery_broker(redis.url),
        sweeping_worker(fault_env, broker_url=redis.url) as worker,
    ):
        answers: list[tuple[int, bytes, float]] = []

        def send() -> None:
            started = time.monotonic()
            response = upload(client, case.pk)
            answers.append((response.status_code, response.content, time.monotonic() - started))
            connection.close()

        # Frozen, Redis still accepts connections but answers nothing: without timeouts a
        # send waits for it forever. The upload runs aside so that a hang fails the test.
        with redis.frozen():
            uploader = threading.Thread(target=send)
            uploader.start()
            uploader.join(timeout=20)
        uploader.join()
        [(status, content, upload_seconds)] = answers
        assert status == 201, content
        assert upload_seconds < 10
        image = Image.objects.get(case=case)
        assert image.file.name
        assert image.file.storage.exists(image.file.name)
        prediction = Prediction.objects.get(image=image)

        def done() -> bool:
            return Prediction.objects.get(pk=prediction.pk).status == PredictionStatus.DONE

        wait_for(done, timeout=SCORING_TIMEOUT, what="scoring after the hang", worker=worker)
        time.sleep(3)  # a duplicate task, had one been queued, would run now

    prediction.refresh_from_db()
    assert prediction.attempts == 1
    assert scored_events(prediction.pk) == 1


def _pg_cluster() -> tuple[str, str]:
    root = Path("/etc/postgresql")
    versions = sorted(path.name for path in root.iterdir()) if root.is_dir() else []
    if not versions or shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        pytest.skip("needs a local PostgreSQL cluster managed by pg_ctlcluster (as root)")
    return versions[-1], "main"


def _pg_ctl(action: str) -> None:
    version, name = _pg_cluster()
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action]
    if action == "stop":
        command += ["-m", "fast"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def _pg_wait_ready(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False, timeout=10
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("PostgreSQL did not come back")


@contextmanager
def postgresql_stopped() -> Iterator[None]:
    """Stop the shared PostgreSQL for the block; it is always started again."""
    _pg_cluster()
    connections.close_all()
    _pg_ctl("stop")
    try:
        yield
    finally:
        _pg_ctl("start")
        _pg_wait_ready()
        connections.close_all()


def test_requests_fail_cleanly_while_postgresql_restarts_and_the_app_recovers_by_itself(
    fault_env,
):
    if connections["default"].vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    _pg_cluster()
    clinician = ClinicianFactory.create()
    case = CaseFactory.create(created_by=clinician)
    api = api_client(clinician)
    api.raise_request_exception = False
    browser = login(clinician)
    browser.raise_request_exception = False
    anonymous = Client(raise_request_exception=False)
    assert api.get(reverse("api:case-list")).status_code == 200

    with postgresql_stopped():
        listing = api.get(reverse("api:case-list"))
        assert listing.status_code == 503
        assert listing.json()["error"]["code"] == "service_unavailable"
        assert listing["Retry-After"]
        refused = upload(api, case.pk)
        assert refused.status_code == 503
        page = browser.get(reverse("cases:list"))
        assert page.status_code == 503
        assert "Temporarily unavailable" in page.text
        health = anonymous.get(reverse("health"))
        assert health.status_code == 503
        assert health.json()["components"]["database"]["ok"] is False

    # Nobody restarts the app: the next requests simply work.
    assert api.get(reverse("api:case-list")).status_code == 200
    assert browser.get(reverse("cases:list")).status_code == 200
    assert anonymous.get(reverse("health")).status_code in (200, 503)  # broker/model decide

    # Uploads racing a restart: each either fully succeeds or leaves nothing behind.
    statuses: list[int] = []

    def restart() -> None:
        time.sleep(1.5)
        with postgresql_stopped():
            time.sleep(2)

    restarter = threading.Thread(target=restart)
    restarter.start()
    deadline = time.monotonic() + 8
    try:
        while time.monotonic() < deadline or restarter.is_alive():
            statuses.append(upload(api, case.pk).status_code)
            time.sleep(0.05)
    finally:
        restarter.join()
    connections.close_all()

    assert set(statuses) <= {201, 503}, statuses
    assert 503 in statuses
    assert 201 in statuses
    accepted = statuses.count(201)
    images = Image.objects.filter(case=case).count()
    # Every 201 is stored. An upload whose commit landed just as the server went away can still
    # be answered 503 (the reply could not be read back); it is then stored whole, never half.
    assert accepted <= images <= len(statuses)
    assert Prediction.objects.filter(image__case=case).count() == images
    uploaded = AuditEvent.objects.filter(case=case, action=AuditAction.IMAGE_UPLOADED)
    assert uploaded.count() == images
    stored = {
        str(path.relative_to(fault_env["media"]))
        for path in Path(fault_env["media"]).rglob("*")
        if path.is_file()
    }
    # Each image is stored with its thumbnail, and nothing else is left behind.
    kept = Image.objects.filter(case=case).values_list("file", "thumbnail")
    assert stored == {name for pair in kept for name in pair if name}


def broken_artifact(kind: str, root: Path) -> Path:
    if kind == "missing":
        return root / "no-such-model"
    source = served_model_dir()
    target = root / "corrupt-model"
    target.mkdir()
    shutil.copy(source / "metadata.json", target / "metadata.json")
    model_file = json.loads((source / "metadata.json").read_text())["model_file"]
    (target / model_file).write_bytes(b"truncated" * 100)
    return target


@pytest.mark.parametrize(
    ("kind", "message"), [("missing", "does not exist"), ("corrupt", "is corrupt")]
)
def test_a_worker_refuses_to_start_without_a_usable_model_and_uploads_stay_pending(
    fault_env, tmp_path, monkeypatch, kind, message
):
    artifact = broken_artifact(kind, tmp_path)
    with celery_worker(
        media_root=fault_env["media"],
        log_dir=fault_env["logs"],
        queue=fault_env["queue"],
        extra_env={"DERMATRIAGE_MODEL_DIR": str(artifact)},
        wait_ready=False,
    ) as worker:
        returncode = worker.process.wait(timeout=90)
    assert returncode != 0
    log = worker.log()
    assert "refusing to start" in log
    assert message in log
    assert " ready." not in log

    # The web still accepts uploads; they wait, visibly pending, for a worker that can score.
    clinician = ClinicianFactory.create()
    client = api_client(clinician)
    case = CaseFactory.create(created_by=clinician)
    response = upload(client, case.pk)
    assert response.status_code == 201
    prediction_id = response.json()[0]["prediction"]["id"]
    state = client.get(reverse("api:prediction-detail", args=[prediction_id])).json()
    assert state["status"] == "pending"

    # The health endpoint, reading the same configuration, says why.
    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(artifact))
    health = Client().get(reverse("health"))
    assert health.status_code == 503
    assert message in health.json()["components"]["model"]["detail"]
