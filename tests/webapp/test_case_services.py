import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from tests.webapp.factories import CaseFactory, jpeg_bytes
from tests.webapp.faults import celery_broker, throwaway_redis
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import BodySite, Image
from webapp.cases.services import case_create
from webapp.casework.services import case_images_upload
from webapp.scoring import services as scoring_services
from webapp.scoring.models import Prediction, PredictionStatus


def upload(name: str = "lesion.jpg", content: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content or jpeg_bytes(), content_type="image/jpeg")


def test_it_creates_a_case_and_records_it(clinician):
    case = case_create(created_by=clinician, subject_ref=" P-17 ", body_site=BodySite.HEAD_NECK)
    assert case.subject_ref == "P-17"
    assert AuditEvent.objects.filter(case=case, action=AuditAction.CASE_CREATED).count() == 1


def test_it_refuses_cases_from_reviewers(reviewer):
    with pytest.raises(PermissionDenied):
        case_create(created_by=reviewer, subject_ref="P-1", body_site=BodySite.OTHER)


def test_it_stores_each_image_with_a_pending_prediction(
    clinician, django_capture_on_commit_callbacks
):
    case = CaseFactory.create(created_by=clinician)
    with django_capture_on_commit_callbacks() as callbacks:
        images = case_images_upload(
            case=case, files=[upload("a.jpg"), upload("b.jpg")], uploaded_by=clinician
        ).images
    assert [image.original_filename for image in images] == ["a.jpg", "b.jpg"]
    assert all(image.width == 64 and image.height == 48 for image in images)
    assert all(len(image.sha256) == 64 for image in images)
    predictions = Prediction.objects.filter(image__case=case)
    assert {p.status for p in predictions} == {PredictionStatus.PENDING}
    assert predictions.count() == 2
    # One wake-up for the scoring workers, sent only once the transaction commits.
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(case=case, action=AuditAction.IMAGE_UPLOADED).count() == 2


def test_it_stores_images_under_random_names(clinician):
    case = CaseFactory.create(created_by=clinician)
    [image] = case_images_upload(
        case=case, files=[upload("Jane Doe arm.jpg")], uploaded_by=clinician
    ).images
    assert "Jane" not in str(image.file.name)
    assert image.original_filename == "Jane Doe arm.jpg"


def test_it_accepts_none_of_an_upload_with_one_bad_file(clinician):
    case = CaseFactory.create(created_by=clinician)
    bad = SimpleUploadedFile("notes.jpg", b"not an image", content_type="image/jpeg")
    with pytest.raises(ValidationError) as info:
        case_images_upload(case=case, files=[upload(), bad], uploaded_by=clinician)
    assert "notes.jpg" in str(info.value)
    assert not Image.objects.filter(case=case).exists()
    assert not Prediction.objects.exists()


def test_it_refuses_uploads_from_reviewers(reviewer):
    case = CaseFactory.create()
    with pytest.raises(PermissionDenied):
        case_images_upload(case=case, files=[upload()], uploaded_by=reviewer)


@contextmanager
def interrupted_once_queuing(*, after: float) -> Iterator[None]:
    """Interrupt this thread as a web server's worker timeout does, while a wake-up is sent.

    Gunicorn's timeout raises SystemExit in the request; here it comes `after` seconds after
    the upload committed (its prediction is visible), so mid-way through the send.
    """

    def time_out(signum: int, frame: object) -> None:
        raise SystemExit(1)

    def watch() -> None:
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline and not stop.is_set():
                if Prediction.objects.exists():
                    time.sleep(after)
                    signal.pthread_kill(main, signal.SIGALRM)
                    return
                time.sleep(0.02)
        finally:
            connection.close()

    main = threading.get_ident()
    assert threading.current_thread() is threading.main_thread()
    stop = threading.Event()
    previous = signal.signal(signal.SIGALRM, time_out)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        signal.signal(signal.SIGALRM, previous)


def test_it_keeps_the_files_of_a_committed_upload_cut_short_while_queuing_its_scoring(
    clinician, settings, transactional_db, tmp_path, monkeypatch
):
    if settings.USING_EMBEDDED_BROKER:
        pytest.skip("needs the Redis broker (run through scripts/test.sh)")
    # Long enough that only the interrupt ends the send to the frozen broker.
    monkeypatch.setitem(scoring_services.WAKE_TRANSPORT_OPTIONS, "socket_timeout", 30)
    case = CaseFactory.create(created_by=clinician)
    with (
        throwaway_redis(tmp_path) as redis,
        celery_broker(redis.url),
        redis.frozen(),
        interrupted_once_queuing(after=0.5),
        pytest.raises(SystemExit),
    ):
        case_images_upload(case=case, files=[upload()], uploaded_by=clinician)

    image = Image.objects.get(case=case)
    assert image.file.name
    assert image.file.storage.exists(image.file.name)
    # Pending, for the next wake-up to score.
    prediction = Prediction.objects.get(image=image)
    assert prediction.status == PredictionStatus.PENDING
