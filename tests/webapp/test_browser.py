"""Real browser (Debian's chromium via Playwright) against the live server and a real worker.

The `browser` and `page` fixtures live in conftest.py, so every browser test module shares
the one Playwright instance a test session may run.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from inference.disclaimer import DISCLAIMER
from tests.webapp.factories import PASSWORD, ClinicianFactory, PredictionFactory, ReviewerFactory
from webapp.accounts.models import User
from webapp.cases.models import BodySite
from webapp.cases.services import case_create
from webapp.casework.services import case_images_upload
from webapp.reviews.models import Review

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCORING_TIMEOUT_MS = 180_000


def log_in(page: Any, base_url: str, user: User) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/")
    # Every page needs a session, so the app sends us to the login form first.
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect_disclaimer(page)
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_text(f"{user.username} (")).to_be_visible()


def expect_disclaimer(page: Any) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_test_id("disclaimer")).to_have_text(DISCLAIMER)


def mark_page(page: Any) -> None:
    """Tag the loaded document; the tag survives htmx swaps but not a reload."""
    page.evaluate("window.__sameDocument = true")


def still_same_page(page: Any) -> bool:
    return page.evaluate("window.__sameDocument === true") is True


def test_a_clinician_uploads_an_image_and_sees_its_score_appear_live(
    live_server, e2e, page, flagged_lesion
):
    from playwright.sync_api import expect

    clinician = ClinicianFactory.create()
    log_in(page, live_server.url, clinician)
    expect(page.get_by_role("heading", name="My cases")).to_be_visible()
    expect_disclaimer(page)

    page.click("text=New case")
    expect_disclaimer(page)
    page.fill("input[name=subject_ref]", "BROWSER-1")
    page.select_option("select[name=body_site]", "upper_extremity")
    page.click("button:has-text('Create case')")
    expect(page).to_have_url(re.compile(r"/cases/\d+/$"))
    expect_disclaimer(page)

    with e2e.held():
        page.set_input_files("input[name=images]", str(flagged_lesion.path))
        page.click("button:has-text('Upload and score')")
        expect(page.get_by_text("1 image uploaded; scoring started.")).to_be_visible()
        # Scoring is certainly still pending here: the page must update itself later.
        expect(page.locator("#case-images")).to_have_attribute("data-scoring", "in-progress")
        expect(page.locator("[data-testid=prediction-result]")).to_have_attribute(
            "data-status", "pending"
        )
        mark_page(page)

    result = page.locator("[data-testid=prediction-result][data-status=done]")
    expect(result).to_be_visible(timeout=SCORING_TIMEOUT_MS)
    assert still_same_page(page), "the score should arrive without a page reload"
    expect(result).to_contain_text("High risk")
    # The header's review state came along with the score, out of band.
    expect(page.get_by_test_id("case-review-state")).to_have_text("Flagged, awaiting review")
    expect(page.locator("#case-images")).to_contain_text("EfficientNet")
    # The history timeline refreshed itself too.
    expect(page.locator("#timeline")).to_contain_text("Image scored")
    # The final answer (286) stopped the polling: the fragment no longer asks again.
    expect(page.locator("#case-images")).to_have_attribute("data-scoring", "idle")
    assert page.locator("#case-images").get_attribute("hx-trigger") is None
    expect_disclaimer(page)


def test_a_reviewer_sees_the_case_arrive_in_the_queue_and_records_a_decision(
    live_server, e2e, page, flagged_lesion
):
    from playwright.sync_api import expect

    reviewer = ReviewerFactory.create()
    log_in(page, live_server.url, reviewer)
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.get_by_text("Nothing in the queue.")).to_be_visible()
    mark_page(page)

    # A clinician uploads meanwhile; the worker scores it and the open queue page updates.
    clinician = ClinicianFactory.create()
    case = case_create(created_by=clinician, subject_ref="BROWSER-2", body_site=BodySite.HEAD_NECK)
    upload = SimpleUploadedFile(flagged_lesion.path.name, flagged_lesion.read_bytes(), "image/jpeg")
    case_images_upload(case=case, files=[upload], uploaded_by=clinician)

    row = page.locator(f"[data-testid=queue-row][data-case-id='{case.pk}']")
    expect(row).to_be_visible(timeout=SCORING_TIMEOUT_MS)
    assert still_same_page(page), "the queue should update without a page reload"
    expect_disclaimer(page)

    row.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/cases/{case.pk}/$"))
    expect_disclaimer(page)
    expect(page.locator("[data-testid=prediction-result]")).to_contain_text("High risk")
    page.get_by_test_id("review-row").get_by_role("radio", name=re.compile("^Refer")).check()
    page.fill("textarea[name=note]", "Refer to dermatology.")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Review recorded.")).to_be_visible()
    expect(page.get_by_test_id("review")).to_contain_text("Refer")

    review = Review.objects.get(case=case)
    assert (review.reviewer, review.decision) == (reviewer, "refer")
    page.goto(f"{live_server.url}/queue/")
    expect(page.get_by_text("Nothing in the queue.")).to_be_visible()


def test_a_reviewer_is_told_when_the_queues_dates_are_the_wrong_way_round(live_server, page):
    from playwright.sync_api import expect

    reviewer = ReviewerFactory.create()
    log_in(page, live_server.url, reviewer)
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    mark_page(page)
    page.fill("input[name=flagged_from]", "2024-03-02")
    page.fill("input[name=flagged_to]", "2024-03-01")
    page.click("button:has-text('Apply')")
    # htmx swaps the refused filters' answer (a 400) into the page, with what to correct.
    expect(page.get_by_test_id("queue-filter-errors")).to_contain_text("date is after the")
    expect(page.get_by_text("Correct the filters above to see the queue.")).to_be_visible()
    assert still_same_page(page), "the answer should be swapped in without a page reload"


def test_the_pages_and_the_api_docs_run_under_the_content_security_policy(live_server, page):
    from playwright.sync_api import expect

    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    clinician = ClinicianFactory.create()
    case = case_create(created_by=clinician, subject_ref="CSP-1", body_site=BodySite.TRUNK_ANTERIOR)
    log_in(page, live_server.url, clinician)
    page.goto(f"{live_server.url}/cases/{case.pk}/")
    expect(page.locator("#dropzone")).to_be_visible()
    # The drag-and-drop script is a file of its own now; it ran if dragging marks the zone.
    page.dispatch_event("#dropzone", "dragenter")
    expect(page.locator("#dropzone")).to_have_class(re.compile(r"\bover\b"))
    page.goto(f"{live_server.url}/api/docs/")
    # Swagger UI drew the operations from the schema: its scripts and styles were allowed.
    expect(page.get_by_text("/api/v1/cases/", exact=True).first).to_be_visible(timeout=30_000)
    assert refused == []


def test_a_reviewer_shows_and_fades_the_heatmap_over_an_image(live_server, page):
    from playwright.sync_api import expect

    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    prediction = PredictionFactory.create(flagged=True, with_heatmap=True)
    reviewer = ReviewerFactory.create()
    log_in(page, live_server.url, reviewer)
    page.goto(f"{live_server.url}/cases/{prediction.image.case_id}/")

    overlay = page.get_by_test_id("heatmap")
    toggle = page.get_by_label("Show heatmap")
    opacity = page.get_by_label("Heatmap opacity")
    expect(overlay).to_be_hidden()
    toggle.check()
    expect(overlay).to_be_visible()
    # The overlay loaded (once shown: it is lazy) and lies exactly over its image.
    expect(overlay).to_have_js_property("naturalWidth", 256)
    image_box = page.get_by_role("img", name="Image 1 of 1 (lesion.jpg)", exact=True).bounding_box()
    assert overlay.bounding_box() == image_box
    expect(overlay).to_have_css("opacity", "0.7")
    opacity.fill("30")
    expect(overlay).to_have_css("opacity", "0.3")
    toggle.uncheck()
    expect(overlay).to_be_hidden()
    assert refused == []
