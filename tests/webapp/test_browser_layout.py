"""The site's one layout in a real browser: a phone's width, every control named, the tab order.

The pages are drawn by Debian's chromium through Playwright, as in test_browser, whose browser
fixture and sign-in this module shares.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template.loader import render_to_string

from inference.disclaimer import DISCLAIMER
from tests.webapp.factories import PASSWORD, ClinicianFactory, PredictionFactory, ReviewerFactory
from tests.webapp.test_browser import expect_disclaimer, log_in
from webapp.cases.models import Case
from webapp.cases.services import case_queue_refresh

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# Unbroken and as long as the field allows: it must wrap or scroll in its box, not widen the page.
LONG_SUBJECT_REF = "LONG-PSEUDONYMOUS-REFERENCE-WITHOUT-ANY-SPACES-0123456789-ABCDEF"

# Where the keyboard's focus is, with its box in the document's coordinates and the part of the
# layout it lies in. An element keeps its number across calls (a date field takes several Tabs).
FOCUSED = """() => {
  const element = document.activeElement;
  if (!element || element === document.body) {
    return null;
  }
  window.__focusNumbers ??= new WeakMap();
  if (!window.__focusNumbers.has(element)) {
    window.__focusCount = (window.__focusCount ?? 0) + 1;
    window.__focusNumbers.set(element, window.__focusCount);
  }
  const box = element.getBoundingClientRect();
  const part = element.matches(".skip-link") ? "skip link"
    : element.closest("nav[aria-label=Main]") ? "navigation"
    : element.closest("main") ? "main"
    : element.closest("footer") ? "footer" : "elsewhere";
  return {
    number: window.__focusNumbers.get(element),
    part: part,
    top: box.top + window.scrollY,
    bottom: box.bottom + window.scrollY,
    left: box.left + window.scrollX,
    right: box.right + window.scrollX,
    html: element.outerHTML.slice(0, 160),
  };
}"""


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE)
    yield context.new_page()
    context.close()


@pytest.fixture
def desktop(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()


@pytest.fixture
def flagged_case_with_heatmap(db: None) -> Case:
    """A clinician's case, long-named, with one high-risk image and its heatmap, in the queue."""
    prediction = PredictionFactory.create(
        flagged=True,
        with_heatmap=True,
        image__case__subject_ref=LONG_SUBJECT_REF,
        model_name="EfficientNetB0 dermoscopy classifier",
    )
    return case_queue_refresh(case_id=prediction.image.case_id)


def expect_the_sites_layout(page: Any) -> None:
    """The page fits the window's width and shows the navigation and the disclaimer."""
    from playwright.sync_api import expect

    page.wait_for_load_state("load")
    expect_disclaimer(page)
    expect(page.get_by_test_id("disclaimer")).to_be_in_viewport()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("link", name="DermaTriage", exact=True)).to_be_in_viewport()
    expect(page.get_by_role("banner")).to_have_count(1)
    expect(page.get_by_role("main")).to_have_count(1)
    expect(page.get_by_role("contentinfo")).to_have_count(1)
    widths = page.evaluate(
        "({page: document.documentElement.scrollWidth, window: window.innerWidth})"
    )
    assert widths["page"] <= widths["window"], f"{page.url} is wider than the window: {widths}"


def expect_every_control_named(page: Any) -> None:
    """Every visible input, select, textarea and button has a non-empty accessible name."""
    from playwright.sync_api import expect

    controls = page.locator("input:visible, select:visible, textarea:visible, button:visible").all()
    assert controls, f"{page.url} has no controls to check"
    for control in controls:
        described = control.evaluate("element => element.outerHTML.slice(0, 200)")
        expect(control, f"no accessible name on {page.url}: {described}").to_have_accessible_name(
            re.compile(r"\S")
        )


def expect_within_the_phones_width(locator: Any) -> None:
    box = locator.bounding_box()
    assert box is not None, locator
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= PHONE["width"], box


def check_page(page: Any, url: str) -> None:
    page.goto(url)
    expect_the_sites_layout(page)
    expect_every_control_named(page)


def tab_stops(page: Any, url: str) -> list[dict[str, Any]]:
    """Load the page and Tab from its top to its end; each element once, in the order reached."""
    # A fresh load: a focus given up (blur) would still be where the next Tab starts from.
    page.goto(url)
    stops: list[dict[str, Any]] = []
    for _ in range(200):
        page.keyboard.press("Tab")
        stop = page.evaluate(FOCUSED)
        if stop is None or (stops and stop["number"] == stops[0]["number"]):
            return stops
        if not stops or stop["number"] != stops[-1]["number"]:
            stops.append(stop)
    raise AssertionError(f"the tab order of {url} never ended")


def expect_tab_order_to_follow_the_layout(page: Any, url: str) -> None:
    """The skip link first, then the navigation, then the page's content, in reading order."""
    stops = tab_stops(page, url)
    parts = [stop["part"] for stop in stops]
    assert parts[0] == "skip link", parts
    sections = [part for index, part in enumerate(parts) if index == 0 or parts[index - 1] != part]
    assert sections == ["skip link", "navigation", "main"], sections
    # Each stop after the skip link (which is drawn over the page) is further along the
    # page than the last: to its right (on the same line, or the top of the next column, as
    # the review form beside a case's images), or below it.
    for before, after in itertools.pairwise(stops[1:]):
        same_line = after["top"] < before["bottom"] and after["bottom"] > before["top"]
        to_the_right = after["left"] >= before["right"] - 1
        further = to_the_right or (not same_line and after["top"] >= before["top"])
        assert further, f"{after['html']} comes after {before['html']} but is drawn before it"


def test_the_sign_in_page_fits_a_phone_and_names_its_controls(live_server, phone):
    from playwright.sync_api import expect

    check_page(phone, f"{live_server.url}/accounts/login/")
    expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
    # Fields and button are inside the window, not cut off at its edge.
    for control in (phone.get_by_label("Username"), phone.get_by_role("button", name="Log in")):
        expect(control).to_be_in_viewport()


def test_a_clinicians_pages_fit_a_phone_and_name_every_control(
    live_server, phone, flagged_case_with_heatmap
):
    from playwright.sync_api import expect

    log_in(phone, live_server.url, flagged_case_with_heatmap.created_by)
    check_page(phone, f"{live_server.url}/cases/")
    expect(phone.get_by_role("link", name=f"#{flagged_case_with_heatmap.pk}")).to_be_visible()

    check_page(phone, f"{live_server.url}/cases/{flagged_case_with_heatmap.pk}/")
    expect(phone.locator("#dropzone")).to_be_in_viewport(ratio=0.9)
    image = phone.get_by_role("img", name="Image 1 of 1 (lesion.jpg)", exact=True)
    image.scroll_into_view_if_needed()
    expect_within_the_phones_width(image)

    check_page(phone, f"{live_server.url}/accounts/password-change/")
    check_page(phone, f"{live_server.url}/no-such-page/")
    expect(phone.get_by_role("heading", name="Not found")).to_be_visible()


def test_a_reviewers_pages_fit_a_phone_and_name_every_control(
    live_server, phone, flagged_case_with_heatmap
):
    from playwright.sync_api import expect

    log_in(phone, live_server.url, ReviewerFactory.create())
    check_page(phone, f"{live_server.url}/queue/")
    row = phone.get_by_test_id("queue-row")
    expect(row).to_have_count(1)
    # The wide table scrolls in its own box: the box fits the window, the table is wider.
    scroll = phone.locator(".table-scroll").first
    sizes = scroll.evaluate("box => ({box: box.clientWidth, table: box.scrollWidth})")
    assert sizes["box"] <= PHONE["width"] < sizes["table"], sizes

    check_page(phone, f"{live_server.url}/cases/{flagged_case_with_heatmap.pk}/")
    expect(phone.get_by_role("button", name="Save and next")).to_be_visible()
    expect(phone.get_by_label("Show heatmap")).to_be_visible()


def test_a_reviewers_desktop_keeps_the_keys_readable_and_the_buttons_in_sight(live_server, desktop):
    from playwright.sync_api import expect

    case = PredictionFactory.create(flagged=True, probability=0.9).image.case
    for _ in range(3):
        PredictionFactory.create(image__case=case, flagged=True)
    case_queue_refresh(case_id=case.pk)
    log_in(desktop, live_server.url, ReviewerFactory.create())
    desktop.goto(f"{live_server.url}/cases/{case.pk}/")
    expect(desktop.locator(".review-row.current-image")).to_have_count(1)

    # A key's letter is not drawn in its key cap's colour.
    colours = desktop.locator("#review-form kbd").first.evaluate(
        "key => [getComputedStyle(key).color, getComputedStyle(key).backgroundColor]"
    )
    assert colours[0] != colours[1], colours
    # Four images make the form taller than the window; its buttons stay in sight.
    panel = desktop.locator("#review-panel")
    assert panel.evaluate("panel => panel.scrollHeight > panel.clientHeight")
    expect(desktop.get_by_role("button", name="Save and next")).to_be_in_viewport()
    # The highlighted row's text keeps the page's colour, on a background close to the card's.
    row = desktop.locator(".review-row.current-image")
    text = row.locator("legend").evaluate("legend => getComputedStyle(legend).color")
    assert text == desktop.locator("body").evaluate("body => getComputedStyle(body).color")


def test_the_navigation_wraps_on_a_phone_for_a_user_with_every_link(live_server, phone):
    from tests.webapp.factories import AdminFactory

    admin = AdminFactory.create(is_staff=True)
    log_in(phone, live_server.url, admin)
    expect_the_sites_layout(phone)
    for name in ("Cases", "New case", "Review queue", "Admin", "API", "Password", "Log out"):
        expect_within_the_phones_width(
            phone.get_by_role("navigation", name="Main").get_by_text(name, exact=True)
        )


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_tab_reaches_the_skip_link_then_the_navigation_then_the_content(
    live_server, request, viewport, flagged_case_with_heatmap
):
    page = request.getfixturevalue(viewport)
    log_in(page, live_server.url, ReviewerFactory.create())
    for path in ("/cases/", f"/cases/{flagged_case_with_heatmap.pk}/", "/queue/"):
        expect_tab_order_to_follow_the_layout(page, f"{live_server.url}{path}")


def test_the_skip_link_shows_when_focused_and_moves_the_focus_to_the_content(live_server, phone):
    from playwright.sync_api import expect

    log_in(phone, live_server.url, ClinicianFactory.create())
    phone.goto(f"{live_server.url}/cases/")
    skip = phone.get_by_role("link", name="Skip to content")
    expect(skip).not_to_be_in_viewport()
    phone.keyboard.press("Tab")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    # The focus ring is drawn: a solid outline, not Pico's faint shadow alone.
    assert skip.evaluate("link => getComputedStyle(link).outlineStyle") == "solid"
    phone.keyboard.press("Enter")
    expect(phone.get_by_role("main")).to_be_focused()
    phone.keyboard.press("Tab")
    assert phone.evaluate("document.activeElement.closest('main') !== null")


def test_changing_the_password_and_logging_out_keep_the_layout(live_server, phone):
    from playwright.sync_api import expect

    log_in(phone, live_server.url, ClinicianFactory.create())
    phone.goto(f"{live_server.url}/accounts/password-change/")
    expect(phone.get_by_role("heading", name="Change password")).to_be_visible()
    phone.fill("input[name=old_password]", PASSWORD)
    phone.fill("input[name=new_password1]", "a-new-Passphrase-42")
    phone.fill("input[name=new_password2]", "a-new-Passphrase-42")
    phone.get_by_role("button", name="Change password").click()
    expect(phone.get_by_role("heading", name="Password changed")).to_be_visible()
    expect_the_sites_layout(phone)
    phone.get_by_role("button", name="Log out").click()
    expect(phone.get_by_role("heading", name="Logged out")).to_be_visible()
    expect_the_sites_layout(phone)
    phone.get_by_role("link", name="Log in again").click()
    expect(phone.get_by_role("heading", name="Log in")).to_be_visible()


def test_the_logged_out_page_has_the_sites_layout(rf):
    request = rf.get("/accounts/logout/")
    request.user = AnonymousUser()
    text = render_to_string("accounts/logged_out.html", request=request)
    assert "<h1>Logged out</h1>" in text
    assert DISCLAIMER in text
    assert 'class="brand" href="/"' in text
