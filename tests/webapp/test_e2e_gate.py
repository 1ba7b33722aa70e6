"""An upload the model cannot judge, through the API and a real Celery worker with the served
model and its input gate: it gets its reason, not a risk, its case waits in the
needs-a-better-image bucket, and every scored image gets a heatmap beside it, served only to
those who may see the image."""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath
from typing import Any

import PIL.Image
import PIL.ImageDraw
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from inference.artifact import read_metadata
from inference.gate import GateReason
from tests.webapp.conftest import api_client, login
from tests.webapp.e2e import served_model_dir, wait_for
from tests.webapp.factories import ClinicianFactory, ReviewerFactory
from webapp.scoring.models import Prediction

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCORING_TIMEOUT = 180  # the first task also loads TensorFlow and the model


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


def upload(client: Any, case_id: int, *files: tuple[str, bytes, str]) -> list[dict[str, Any]]:
    response = client.post(
        reverse("api:case-images", args=[case_id]),
        {"images": [SimpleUploadedFile(name, data, kind) for name, data, kind in files]},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_an_image_the_model_cannot_judge_waits_for_a_better_one_with_its_reason(
    e2e, flagged_lesion, settings
):
    assert read_metadata(served_model_dir()).raw.get("input_gate"), "the served model has no gate"
    clinician_user = ClinicianFactory.create()
    clinician, reviewer = api_client(clinician_user), api_client(ReviewerFactory.create())
    stranger_user = ClinicianFactory.create()
    stranger = api_client(stranger_user)

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

    wait_for(scored, timeout=SCORING_TIMEOUT, what="the uploads to be scored", worker=e2e)
    *gated, passed = (clinician.get(url).json() for url in urls)

    # Each image the model cannot judge says why, and is no risk whatever its raw score. Which
    # reason is the served gate's to decide: a flat colour may fail as too blurred first.
    for prediction in gated:
        assert prediction["status"] == "done", prediction["error_message"]
        assert prediction["gate_reason"] in set(GateReason)
        assert prediction["gate_message"] == GateReason(prediction["gate_reason"]).message
        assert prediction["high_risk"] is False
        assert 0.0 <= prediction["probability"] <= 1.0
    assert gated[1]["gate_reason"] == "not_dermoscopic"  # the page of text
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
        row = Prediction.objects.select_related("image").get(pk=prediction["id"])
        heatmap_file = PurePosixPath(row.heatmap.name or "")
        assert heatmap_file.parent == PurePosixPath(row.image.file.name or "").parent
        assert Path(settings.MEDIA_ROOT, heatmap_file).is_file()
        # A reviewer may see it; another clinician reaches neither it nor the score, as for
        # the image, through the API or the page.
        assert reviewer.get(prediction["heatmap_url"]).status_code == 200
        assert stranger.get(prediction["heatmap_url"]).status_code == 404
        score_url = reverse("api:prediction-detail", args=[prediction["id"]])
        assert stranger.get(score_url).status_code == 404
        page_url = reverse("cases:heatmap-file", args=[image["case_id"], prediction["id"]])
        assert login(clinician_user).get(page_url).status_code == 200
        assert login(stranger_user).get(page_url).status_code == 404

    # The case page gives the reason in words, the raw score on request, and the overlays.
    page = login(clinician_user).get(reverse("cases:detail", args=[foreign_case["id"]])).text
    for prediction in gated:
        assert f'data-gate-reason="{prediction["gate_reason"]}"' in page
        assert prediction["gate_message"] in page
    assert page.count("<summary>Show the raw score</summary>") == 2
    assert "High risk" not in page
    # Its heatmap is stored and linked in the API (above), but the page does not lay a map of
    # what drove a score it does not trust over the image.
    assert 'class="heatmap-overlay"' not in page

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
