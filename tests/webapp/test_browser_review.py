"""A reviewer's workstation in a real browser: the keyboard, claims and review history.

The cases come flagged from the factories rather than from a worker, so these run fast.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.webapp.factories import PASSWORD, CaseFactory, PredictionFactory, ReviewerFactory
from webapp.accounts.models import User
from webapp.cases.models import Case, ReviewState
from webapp.cases.services import case_queue_refresh
from webapp.reviews.models import CaseClaim, Review

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def flagged_case(*probabilities: float) -> Case:
    """A case with one flagged image per probability."""
    case = CaseFactory.create()
    for probability in probabilities:
        PredictionFactory.create(image__case=case, flagged=True, probability=probability)
    return case_queue_refresh(case_id=case.pk)


def log_in_by_keyboard(page: Any, base_url: str, user: User) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_text(f"{user.username} (")).to_be_visible()


def expect_case_page(page: Any, case: Case) -> None:
    """Wait until the case's page has loaded and its shortcuts are ready."""
    from playwright.sync_api import expect

    expect(page).to_have_url(re.compile(rf"/cases/{case.pk}/(\?.*)?$"))
    page.wait_for_load_state("load")
    # The script marks the first image awaiting a decision: it is listening.
    expect(page.locator(".review-row.current-image")).to_have_count(1)


def content_security_refusals(page: Any) -> list[str]:
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return refused


def test_a_reviewer_works_through_the_queue_with_the_keyboard_alone(live_server, page):
    from playwright.sync_api import expect

    refused = content_security_refusals(page)
    # In queue order, highest probability first; the second has two flagged images.
    cases = [flagged_case(0.97), flagged_case(0.9, 0.6), flagged_case(0.8), flagged_case(0.7)]
    reviewer = ReviewerFactory.create()
    log_in_by_keyboard(page, live_server.url, reviewer)
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.get_by_test_id("queue-total")).to_have_text("4 cases")
    # The shortcuts' script runs once the page has loaded; a key pressed earlier goes nowhere.
    page.wait_for_load_state("load")

    page.keyboard.press("n")
    expect_case_page(page, cases[0])
    # ? shows the list of shortcuts, and hides it again.
    help_list = page.get_by_test_id("shortcut-help")
    expect(help_list).not_to_have_attribute("open", "")
    page.keyboard.press("?")
    expect(help_list).to_have_attribute("open", "")
    expect(help_list).to_contain_text("Next case without saving")
    page.keyboard.press("?")
    expect(help_list).not_to_have_attribute("open", "")
    # Keys typed into the note are text; Escape gives them back to the shortcuts.
    page.get_by_label("Note").focus()
    page.keyboard.type("adr")
    expect(page.get_by_label("Note")).to_have_value("adr")
    expect(page.locator("#review-form input:checked")).to_have_count(0)
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    expect(page.locator("#review-form input[value=agree]:checked")).to_have_count(1)
    page.keyboard.press("Enter")

    expect_case_page(page, cases[1])
    rows = page.get_by_test_id("review-row")
    cards = page.get_by_test_id("image-card")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bcurrent-image\b"))
    # j and k move between the images, each highlighted beside its row of the form.
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bcurrent-image\b"))
    expect(cards.nth(1)).to_have_class(re.compile(r"\bcurrent-image\b"))
    expect(cards.nth(0)).not_to_have_class(re.compile(r"\bcurrent-image\b"))
    page.keyboard.press("k")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bcurrent-image\b"))
    # A decision moves on to the next image.
    page.keyboard.press("d")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bcurrent-image\b"))
    # Saved with the second image undecided: the case opens again, saying what is left, and
    # the highlight starts on the image still waiting rather than the one just decided.
    page.keyboard.press("Enter")
    expect(page.get_by_text("1 image of this case still needs a decision.")).to_be_visible()
    expect_case_page(page, cases[1])
    expect(rows.nth(0).get_by_test_id("standing-review")).to_contain_text("Disagree")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bcurrent-image\b"))
    expect(cards.nth(1)).to_have_class(re.compile(r"\bcurrent-image\b"))
    page.keyboard.press("r")
    page.keyboard.press("Control+Enter")

    expect_case_page(page, cases[2])
    page.keyboard.press("f")
    page.keyboard.press("Enter")

    expect_case_page(page, cases[3])
    page.keyboard.press("a")
    page.keyboard.press("Enter")

    # Nothing is left: back to the queue, which says so.
    expect(page).to_have_url(re.compile(r"/queue/$"))
    expect(page.get_by_text("No case is left to review in this queue")).to_be_visible()
    expect(page.get_by_text("Nothing in the queue.")).to_be_visible()

    for case in cases:
        case.refresh_from_db()
        assert case.review_state == ReviewState.REVIEWED
    decisions = dict(
        Review.objects.filter(case=cases[1]).values_list("prediction__probability", "decision")
    )
    assert decisions == {0.9: "disagree", 0.6: "refer"}
    assert Review.objects.filter(reviewer=reviewer).count() == 5
    assert not CaseClaim.objects.exists()
    assert refused == []


def test_a_case_one_reviewer_has_open_is_taken_for_the_other(live_server, browser):
    from playwright.sync_api import expect

    case_a, case_b = flagged_case(0.95), flagged_case(0.8)
    first, second = ReviewerFactory.create(), ReviewerFactory.create()
    contexts = [browser.new_context(), browser.new_context()]
    try:
        page_1, page_2 = (context.new_page() for context in contexts)
        log_in_by_keyboard(page_1, live_server.url, first)
        page_1.goto(f"{live_server.url}/cases/{case_a.pk}/")
        expect(page_1.get_by_test_id("case-claim")).to_contain_text("You have this case open")

        log_in_by_keyboard(page_2, live_server.url, second)
        row_a = page_2.locator(f"[data-testid=queue-row][data-case-id='{case_a.pk}']")
        expect(row_a.get_by_test_id("queue-taken")).to_contain_text(
            f"Taken by {first.username} until"
        )
        page_2.get_by_test_id("start-reviewing").click()
        expect_case_page(page_2, case_b)
        expect(page_2.get_by_test_id("case-claim")).to_contain_text("You have this case open")

        # And reviewer 2 opening case A anyway sees who has it.
        page_2.goto(f"{live_server.url}/cases/{case_a.pk}/")
        expect(page_2.get_by_test_id("case-claim")).to_contain_text(
            f"Taken by {first.username} until"
        )
        assert CaseClaim.objects.get(case=case_a).reviewer == first
        assert CaseClaim.objects.get(case=case_b).reviewer == second
    finally:
        for context in contexts:
            context.close()


def test_a_second_review_of_an_image_shows_the_first_as_superseded(live_server, page):
    from playwright.sync_api import expect

    case = flagged_case(0.9)
    reviewer = ReviewerFactory.create()
    log_in_by_keyboard(page, live_server.url, reviewer)
    page.goto(f"{live_server.url}/cases/{case.pk}/")
    row = page.get_by_test_id("review-row")
    row.get_by_role("radio", name=re.compile("^Agree")).check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Review recorded.")).to_be_visible()
    expect(row.get_by_test_id("standing-review")).to_contain_text("Agree")

    row.get_by_role("radio", name=re.compile("^Refer")).check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Review recorded.")).to_be_visible()
    expect(row.get_by_test_id("standing-review")).to_contain_text("Refer")
    reviews = page.get_by_test_id("review")
    expect(reviews).to_have_count(2)
    superseded = page.locator("[data-testid=review][data-standing=false]")
    expect(superseded).to_contain_text("Agree")
    expect(superseded.get_by_test_id("review-superseded")).to_have_text("Superseded")
    expect(page.locator("[data-testid=review][data-standing=true]")).to_contain_text("Refer")
    # The image's card shows only the decision that stands.
    expect(page.get_by_test_id("image-card")).to_contain_text("Reviewed: Refer")
    expect(page.get_by_test_id("image-card")).not_to_contain_text("Reviewed: Agree")
