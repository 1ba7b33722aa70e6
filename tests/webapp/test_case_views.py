import re

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from inference.disclaimer import DISCLAIMER
from tests.webapp.conftest import StubClassifier, login
from tests.webapp.factories import CaseFactory, PredictionFactory, jpeg_bytes
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import Case
from webapp.scoring.models import Prediction, PredictionStatus
from webapp.scoring.services import predictions_drain

HTMX = {"HX-Request": "true"}


def test_it_shows_the_disclaimer_on_every_page(clinician, client):
    assert DISCLAIMER in client.get(reverse("login")).text
    assert DISCLAIMER in login(clinician).get(reverse("cases:list")).text


def test_it_creates_a_case_from_the_form(clinician):
    response = login(clinician).post(
        reverse("cases:create"), {"subject_ref": "P-3", "body_site": "other", "notes": ""}
    )
    case = Case.objects.get(subject_ref="P-3")
    assert response.status_code == 302
    assert response["Location"] == reverse("cases:detail", args=[case.pk])


def test_it_uploads_several_images_from_the_form(clinician):
    case = CaseFactory.create(created_by=clinician)
    files = [
        SimpleUploadedFile(f"{n}.jpg", jpeg_bytes(), content_type="image/jpeg") for n in range(3)
    ]
    response = login(clinician).post(reverse("cases:upload", args=[case.pk]), {"images": files})
    assert response.status_code == 302
    assert Prediction.objects.filter(image__case=case, status=PredictionStatus.PENDING).count() == 3


def test_it_reports_an_unreadable_upload_without_storing_it(clinician):
    case = CaseFactory.create(created_by=clinician)
    bad = SimpleUploadedFile("x.jpg", b"nope", content_type="image/jpeg")
    client = login(clinician)
    response = client.post(reverse("cases:upload", args=[case.pk]), {"images": [bad]})
    assert response.status_code == 400
    assert "not an accepted image format" in response.text
    assert not case.images.exists()


def test_it_polls_while_scoring_is_in_progress(clinician):
    prediction = PredictionFactory.create(image__case__created_by=clinician)
    url = reverse("cases:detail", args=[prediction.image.case_id])
    page = login(clinician).get(url)
    assert 'hx-trigger="every 2s"' in page.text
    assert f'hx-get="{url}"' in page.text
    fragment = login(clinician).get(url, headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert 'data-status="pending"' in fragment.text


def test_it_stops_polling_with_286_once_scoring_is_done(clinician):
    prediction = PredictionFactory.create(image__case__created_by=clinician, flagged=True)
    url = reverse("cases:detail", args=[prediction.image.case_id])
    fragment = login(clinician).get(url, headers=HTMX)
    assert fragment.status_code == 286
    assert "hx-trigger" not in fragment.text
    # The timeline listens for this event to refresh itself.
    assert "case-updated" in fragment["HX-Trigger"]
    assert "High risk" in fragment.text
    assert "Test model" in fragment.text
    assert "test-1" in fragment.text


def test_it_shows_a_failed_score_instead_of_a_spinner(clinician):
    prediction = PredictionFactory.create(
        image__case__created_by=clinician,
        status=PredictionStatus.FAILED,
        error_message="The image could not be decoded",
    )
    response = login(clinician).get(
        reverse("cases:detail", args=[prediction.image.case_id]), headers=HTMX
    )
    assert response.status_code == 286
    assert "Scoring failed" in response.text
    assert "could not be decoded" in response.text


def test_it_records_page_views_and_polls_apart(clinician):
    case = CaseFactory.create(created_by=clinician)
    url = reverse("cases:detail", args=[case.pk])
    client = login(clinician)
    client.get(url)
    client.get(url, headers=HTMX)
    views = AuditEvent.objects.filter(case=case, action=AuditAction.CASE_VIEWED)
    assert [event.data["via"] for event in views] == ["page", "poll"]


def test_it_shows_the_case_history_as_a_timeline(clinician):
    case = CaseFactory.create(created_by=clinician)
    client = login(clinician)
    client.post(
        reverse("cases:upload", args=[case.pk]),
        {"images": [SimpleUploadedFile("a.jpg", jpeg_bytes(), content_type="image/jpeg")]},
    )
    response = client.get(reverse("cases:timeline", args=[case.pk]))
    assert "Image uploaded" in response.text


def test_it_streams_the_stored_image(clinician):
    prediction = PredictionFactory.create(image__case__created_by=clinician)
    image = prediction.image
    response = login(clinician).get(reverse("cases:image-file", args=[image.case_id, image.pk]))
    assert response["Content-Type"] == "image/jpeg"
    assert response.getvalue()[:2] == b"\xff\xd8"


def test_a_poll_that_brings_a_high_risk_score_updates_the_header_too(clinician):
    prediction = PredictionFactory.create(image__case__created_by=clinician)
    url = reverse("cases:detail", args=[prediction.image.case_id])
    client = login(clinician)
    page = client.get(url)
    assert 'data-state="not_flagged"' in page.text
    predictions_drain(classifier_loader=lambda: StubClassifier(0.9))
    fragment = client.get(url, headers=HTMX)
    # htmx swaps an element marked out-of-band into the page wherever its id already is.
    [header] = re.findall(r'<span id="case-review-state"[^>]*>[^<]*</span>', fragment.text)
    assert 'hx-swap-oob="true"' in header
    assert "Flagged, awaiting review" in header


def test_a_gated_image_shows_its_reason_instead_of_a_risk_and_the_raw_score_on_request(
    clinician,
):
    prediction = PredictionFactory.create(
        image__case__created_by=clinician, gated=True, gate_reason="too_blurred"
    )
    page = login(clinician).get(reverse("cases:detail", args=[prediction.image.case_id]))
    [card] = re.findall(
        r'<figure class="card" data-testid="image-card".*?</figure>', page.text, re.S
    )
    assert 'data-gate-reason="too_blurred"' in card
    assert "Needs a better image" in card
    assert "Too blurred to judge." in card
    assert "High risk" not in card
    assert "Below threshold" not in card
    # The raw score is there, folded away behind a disclosure the reader opens.
    [raw] = re.findall(r"<details[^>]*>.*?</details>", card, re.S)
    assert "<summary>Show the raw score</summary>" in raw
    assert "0.900" in raw
    assert "0.900" not in card.replace(raw, "")


def test_every_scored_image_has_a_heatmap_to_toggle_and_fade(clinician):
    scored = PredictionFactory.create(
        image__case__created_by=clinician, flagged=True, with_heatmap=True
    )
    case_id = scored.image.case_id
    PredictionFactory.create(image__case_id=case_id)  # pending: nothing to show yet
    page = login(clinician).get(reverse("cases:detail", args=[case_id]))

    heatmap_url = reverse("cases:heatmap-file", args=[case_id, scored.pk])
    overlays = re.findall(r"<img [^>]*heatmap-overlay[^>]*>", page.text)
    assert len(overlays) == 1
    [overlay] = overlays
    assert f'src="{heatmap_url}"' in overlay
    assert f'id="heatmap-{scored.pk}"' in overlay
    assert 'alt="Heatmap of what drove the score of Image 1 of 2 (lesion.jpg)"' in overlay
    # Both controls are named by their labels and say which overlay they drive.
    toggle = re.search(r"<label><input type=\"checkbox\"[^>]*> Show heatmap</label>", page.text)
    assert toggle is not None
    assert f'aria-controls="heatmap-{scored.pk}"' in toggle.group()
    slider = re.search(r'<label>Heatmap opacity <input type="range"[^>]*></label>', page.text)
    assert slider is not None
    assert f'aria-controls="heatmap-{scored.pk}"' in slider.group()
    # The script is a static file of the site (the CSP allows no inline script).
    assert '<script src="/static/js/heatmap.js" defer></script>' in page.text
    assert "<script>" not in page.text


def test_it_streams_the_heatmap_uncached(clinician):
    prediction = PredictionFactory.create(
        image__case__created_by=clinician, done=True, with_heatmap=True
    )
    url = reverse("cases:heatmap-file", args=[prediction.image.case_id, prediction.pk])
    response = login(clinician).get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "no-store"
    assert response.getvalue() == prediction.heatmap.open("rb").read()
    event = AuditEvent.objects.get(action=AuditAction.PREDICTION_VIEWED)
    assert event.data["via"] == "page-heatmap"


def test_a_score_without_a_heatmap_has_no_heatmap_file(clinician):
    prediction = PredictionFactory.create(image__case__created_by=clinician)
    url = reverse("cases:heatmap-file", args=[prediction.image.case_id, prediction.pk])
    assert login(clinician).get(url).status_code == 404
