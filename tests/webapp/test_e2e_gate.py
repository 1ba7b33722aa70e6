"""An upload the model cannot judge, through the API and a real Celery worker: it gets its
reason, not a risk, its case waits in the needs-a-better-image bucket, and every scored image
gets a heatmap beside it, served only to those who may see the image."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from inference.artifact import file_sha256, read_metadata
from inference.gate import GATE_FILE, InputGate
from tests.webapp.conftest import api_client, login
from tests.webapp.e2e import (
    LesionImage,
    WorkerProcess,
    celery_worker,
    served_model_dir,
    wait_for,
)
from tests.webapp.factories import ClinicianFactory, ReviewerFactory
from tests.webapp.faults import private_queue

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCORING_TIMEOUT = 180  # a fresh worker imports TensorFlow and loads the model first


def blue_square() -> bytes:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (640, 480), (20, 60, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def page_of_text() -> bytes:
    page = PIL.Image.new("RGB", (600, 800), (250, 250, 246))
    draw = PIL.ImageDraw.Draw(page)
    words = ["the", "patient", "was", "seen", "in", "clinic", "on", "the", "date", "below"]
    for line in range(50):
        text = " ".join(words[(line + shift) % len(words)] for shift in range(9))
        draw.text((24, 16 + line * 15), text, fill=(25, 25, 25))
    buffer = io.BytesIO()
    page.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def artifact_with_a_gate(directory: Path, lesion: LesionImage) -> Path:
    """A copy of the served artifact with an input gate whose limits this test chooses.

    The feature statistics are those of real lesion images; the distance limit sits halfway
    (on a log scale) between the farthest of them and the nearest of the images that are not
    dermoscopic, and the image checks let everything through.
    """
    from inference import load_classifier

    source = served_model_dir()
    artifact = directory / "gated-model"
    shutil.copytree(source, artifact)
    classifier = load_classifier(artifact)
    dataset = lesion.path.parent
    lesions = [lesion.path, *sorted(dataset.glob("*.jpg"))[:47]]
    real = classifier.analyse(classifier.preprocess(lesions)).features.astype(np.float64)
    foreign = classifier.analyse(
        classifier.preprocess([blue_square(), page_of_text()])
    ).features.astype(np.float64)
    mean = real.mean(axis=0)
    scale = np.sqrt(((real - mean) ** 2).mean(axis=0)) + 1e-3
    gate = InputGate(
        feature_mean=mean,
        whitening=np.diag(1.0 / scale),
        max_distance=0.0,
        min_sharpness=0.0,
        min_brightness=0.0,
        max_brightness=1.0,
    )
    farthest_real, nearest_foreign = gate.distances(real).max(), gate.distances(foreign).min()
    if not farthest_real < nearest_foreign:
        pytest.fail(f"no distance separates {farthest_real} from {nearest_foreign}")
    InputGate(
        feature_mean=mean,
        whitening=gate.whitening,
        max_distance=float(np.sqrt(farthest_real * nearest_foreign)),
        min_sharpness=0.0,
        min_brightness=0.0,
        max_brightness=1.0,
    ).save(artifact / GATE_FILE)
    metadata_path = artifact / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["input_gate"] = {"sha256": file_sha256(artifact / GATE_FILE)}
    metadata_path.write_text(json.dumps(metadata, indent=2))
    return artifact


@pytest.fixture
def gated_worker(
    request: pytest.FixtureRequest,
    settings: Any,
    transactional_db: None,
    tmp_path: Path,
    flagged_lesion: LesionImage,
) -> Iterator[WorkerProcess]:
    """A worker whose model has an input gate: the session's own when the served model has
    one, else one of this test's on a copy of the artifact with a gate added."""
    if read_metadata(served_model_dir()).raw.get("input_gate"):
        yield request.getfixturevalue("e2e")
        return
    if settings.USING_EMBEDDED_BROKER:
        pytest.skip("end-to-end tests need the Redis broker (run them through scripts/test.sh)")
    settings.MEDIA_ROOT = tmp_path / "media"
    artifact = artifact_with_a_gate(tmp_path, flagged_lesion)
    with (
        private_queue(settings) as queue,
        celery_worker(
            media_root=settings.MEDIA_ROOT,
            log_dir=tmp_path,
            queue=queue,
            extra_env={"DERMATRIAGE_MODEL_DIR": str(artifact)},
        ) as worker,
    ):
        yield worker


def upload(client: Any, case_id: int, *files: tuple[str, bytes, str]) -> list[dict[str, Any]]:
    response = client.post(
        reverse("api:case-images", args=[case_id]),
        {"images": [SimpleUploadedFile(name, data, kind) for name, data, kind in files]},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_an_image_the_model_cannot_judge_waits_for_a_better_one_with_its_reason(
    gated_worker, flagged_lesion, settings
):
    clinician_user = ClinicianFactory.create()
    clinician, reviewer = api_client(clinician_user), api_client(ReviewerFactory.create())
    stranger = api_client(ClinicianFactory.create())

    foreign_case = clinician.post(
        reverse("api:case-list"), {"subject_ref": "E2E-GATE", "body_site": "other"}, format="json"
    ).json()
    lesion_case = clinician.post(
        reverse("api:case-list"),
        {"subject_ref": "E2E-LESION", "body_site": "trunk_posterior"},
        format="json",
    ).json()
    foreign = upload(
        clinician,
        foreign_case["id"],
        ("blue.png", blue_square(), "image/png"),
        ("letter.jpg", page_of_text(), "image/jpeg"),
    )
    [lesion] = upload(
        clinician,
        lesion_case["id"],
        (flagged_lesion.path.name, flagged_lesion.read_bytes(), "image/jpeg"),
    )
    images = [*foreign, lesion]
    urls = [reverse("api:prediction-detail", args=[i["prediction"]["id"]]) for i in images]

    def scored() -> bool:
        return all(clinician.get(url).json()["status"] in ("done", "failed") for url in urls)

    wait_for(scored, timeout=SCORING_TIMEOUT, what="the uploads to be scored", worker=gated_worker)
    *gated, passed = (clinician.get(url).json() for url in urls)

    # Each image the model cannot judge says why, and is no risk whatever its raw score.
    for prediction in gated:
        assert prediction["status"] == "done", prediction["error_message"]
        assert prediction["gate_reason"] == "not_dermoscopic"
        assert prediction["gate_message"] == "Not a dermoscopic image the model can judge."
        assert prediction["high_risk"] is False
        assert 0.0 <= prediction["probability"] <= 1.0
    # A real lesion is let through and flagged as before.
    assert passed["gate_reason"] is None
    assert passed["high_risk"] is True

    # Its case waits in its own bucket, never among the unflagged cases.
    def queue_ids(state: str) -> list[int]:
        body = reviewer.get(reverse("api:queue"), {"state": state}).json()
        return [case["id"] for case in body["results"]]

    assert queue_ids("needs_image") == [foreign_case["id"]]
    assert queue_ids("unreviewed") == [lesion_case["id"]]
    detail = clinician.get(reverse("api:case-detail", args=[foreign_case["id"]])).json()
    assert detail["review_state"] == "needs_image"

    # Every scored image has a PNG heatmap of its own aspect ratio beside its stored file.
    for image, prediction in zip(images, [*gated, passed], strict=True):
        heatmap = clinician.get(prediction["heatmap_url"])
        assert heatmap.status_code == 200
        assert heatmap["Content-Type"] == "image/png"
        overlay = PIL.Image.open(io.BytesIO(heatmap.getvalue()))
        assert overlay.format == "PNG"
        assert max(overlay.size) == 256
        assert overlay.width / overlay.height == pytest.approx(
            image["width"] / image["height"], rel=0.01
        )
        stored = sorted(p.name for p in Path(settings.MEDIA_ROOT, "cases").rglob("*"))
        assert any(name.endswith(f"-heatmap-{prediction['id']}.png") for name in stored)
        # Another clinician reaches neither the score nor its heatmap, as for the image.
        assert stranger.get(prediction["heatmap_url"]).status_code == 404
        assert (
            stranger.get(reverse("api:prediction-detail", args=[prediction["id"]])).status_code
            == 404
        )

    # The case page gives the reason in words, the raw score on request, and the overlays.
    page = login(clinician_user).get(reverse("cases:detail", args=[foreign_case["id"]])).text
    assert page.count("Not a dermoscopic image the model can judge.") == 2
    assert page.count("<summary>Show the raw score</summary>") == 2
    assert "High risk" not in page
    assert len(re.findall(r'<img class="heatmap-overlay"', page)) == 2

    # A reviewer's decision takes the case out of the bucket.
    for prediction in gated:
        review = reviewer.post(
            reverse("api:review-list"),
            {"case": foreign_case["id"], "prediction": prediction["id"], "decision": "follow_up"},
            format="json",
        )
        assert review.status_code == 201
    assert queue_ids("needs_image") == []
    assert foreign_case["id"] in queue_ids("reviewed")
