"""The image viewer in a real browser (Debian's chromium via Playwright): zoom, pan, heatmap,
and an earlier image of the lesion chosen for comparison."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone

from tests.webapp.factories import ClinicianFactory, PredictionFactory, jpeg_bytes
from tests.webapp.test_browser import log_in
from webapp.cases.models import Image
from webapp.scoring.models import Prediction

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRANSFORM = re.compile(r"scale\(([\d.]+)\) translate\((-?[\d.]+)px, (-?[\d.]+)px\)")


def lesion_followed_over_time() -> list[Prediction]:
    """Three scored images of one lesion, a month apart; the newest flagged, with a heatmap."""
    clinician = ClinicianFactory.create()
    first = PredictionFactory.create(
        image__case__created_by=clinician,
        image__content=jpeg_bytes(size=(640, 480)),
        image__width=640,
        image__height=480,
        done=True,
        probability=0.21,
    )
    case = first.image.case
    second = PredictionFactory.create(
        image__case=case,
        image__content=jpeg_bytes(size=(640, 480)),
        image__width=640,
        image__height=480,
        done=True,
        probability=0.43,
    )
    third = PredictionFactory.create(
        image__case=case,
        image__content=jpeg_bytes(size=(640, 480)),
        image__width=640,
        image__height=480,
        flagged=True,
        with_heatmap=True,
    )
    now = timezone.now()
    for months_ago, prediction in zip((2, 1, 0), (first, second, third), strict=True):
        Image.objects.filter(pk=prediction.image_id).update(
            uploaded_at=now - dt.timedelta(days=30 * months_ago)
        )
    return [first, second, third]


def transform_of(stage: Any) -> tuple[float, float, float]:
    match = TRANSFORM.search(stage.evaluate("element => element.style.transform"))
    assert match, stage.evaluate("element => element.style.transform")
    scale, x, y = (float(group) for group in match.groups())
    return scale, x, y


def scale_once(
    page: Any, stage: Any, *, above: float | None = None, equal: float | None = None
) -> float:
    """The stage's scale once it is above, or equal to, a value: a zoom may land on the page's
    next frames rather than within the click or key press that asked for it."""
    page.wait_for_function(
        """([element, above, equal]) => {
            const match = /scale\\(([\\d.]+)\\)/.exec(element.style.transform);
            const scale = match ? parseFloat(match[1]) : NaN;
            return equal === null ? scale > above : scale === equal;
        }""",
        arg=[stage.element_handle(), above, equal],
    )
    return transform_of(stage)[0]


def test_a_clinician_zooms_pans_overlays_the_heatmap_and_compares_an_earlier_image(
    live_server, page
):
    from playwright.sync_api import expect

    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    first, _, third = lesion_followed_over_time()
    case_id = third.image.case_id
    log_in(page, live_server.url, third.image.case.created_by)

    # From the case page's thumbnail to the viewer.
    page.goto(f"{live_server.url}/cases/{case_id}/")
    page.get_by_role("link", name="Image 3 of 3 (lesion.jpg)").click()
    expect(page).to_have_url(re.compile(rf"/cases/{case_id}/images/{third.image_id}/view/$"))

    main = page.get_by_test_id("viewer-main")
    stage = main.get_by_test_id("zoom-stage")
    image = main.get_by_role("img", name="Image 3 of 3 (lesion.jpg)", exact=True)
    expect(image).to_have_js_property("complete", True)
    expect(stage).to_have_attribute("style", re.compile("transform"))
    assert transform_of(stage)[0] == 1

    # Zoom in with the button, the keyboard and the wheel; 0 resets.
    main.get_by_role("button", name="Zoom in").click()
    after_button = scale_once(page, stage, above=1)
    main.get_by_test_id("zoom-viewport").focus()
    page.keyboard.type("+")
    scale_once(page, stage, above=after_button)
    page.keyboard.type("0")
    scale_once(page, stage, equal=1)
    box = main.get_by_test_id("zoom-viewport").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_function(
        "element => !element.style.transform.startsWith('scale(1)')", arg=stage.element_handle()
    )
    zoomed, x, y = transform_of(stage)
    assert zoomed > 1

    # Drag to pan: the image moves with the pointer.
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    page.mouse.down()
    page.mouse.move(centre[0] + 60, centre[1] + 40, steps=6)
    page.mouse.up()
    scale, panned_x, panned_y = transform_of(stage)
    assert scale == zoomed
    assert panned_x > x
    assert panned_y > y

    # The heatmap lies over the zoomed and panned image, and fades with its slider.
    overlay = main.get_by_test_id("heatmap")
    expect(overlay).to_be_hidden()
    main.get_by_label("Show heatmap").check()
    expect(overlay).to_be_visible()
    expect(overlay).to_have_js_property("naturalWidth", 256)
    image_box, overlay_box = image.bounding_box(), overlay.bounding_box()
    assert image_box["width"] > box["width"] / 2  # zoomed in
    for side in ("x", "y", "width", "height"):
        assert overlay_box[side] == pytest.approx(image_box[side], abs=1)
    main.get_by_label("Heatmap opacity").fill("30")
    expect(overlay).to_have_css("opacity", "0.3")

    # The image before this one is compared by default; the strip chooses the first instead.
    compare = page.get_by_test_id("viewer-compare")
    expect(compare.get_by_test_id("facts-label")).to_have_text("Image 2 of 3 (lesion.jpg)")
    page.get_by_test_id("image-strip").get_by_role("link", name=re.compile("Image 1 of 3")).click()
    expect(compare.get_by_test_id("facts-label")).to_have_text("Image 1 of 3 (lesion.jpg)")
    expect(compare.get_by_test_id("facts-score")).to_contain_text("0.210")
    first_date = timezone.localtime(Image.objects.get(pk=first.image_id).uploaded_at)
    expect(compare.get_by_test_id("facts-date")).to_have_text(first_date.strftime("%Y-%m-%d %H:%M"))
    expect(compare.get_by_role("img", name="Image 1 of 3 (lesion.jpg)")).to_have_js_property(
        "complete", True
    )
    # The compared pane zooms on its own (once the new page's script has set Panzoom up).
    compare_stage = compare.get_by_test_id("zoom-stage")
    expect(compare_stage).to_have_attribute("style", re.compile("transform"))
    compare.get_by_role("button", name="Zoom in").click()
    scale_once(page, compare_stage, above=1)
    assert transform_of(page.get_by_test_id("viewer-main").get_by_test_id("zoom-stage"))[0] == 1

    # Previous and next walk the case's images.
    page.get_by_role("link", name="Previous image").click()
    expect(page.get_by_role("heading", name="Image 2 of 3 (lesion.jpg)")).to_be_visible()
    assert refused == []


# The size an <img> draws its picture at inside its box, as object-fit: contain draws it.
DRAWN = """image => {
  const ratio = Math.min(image.clientWidth / image.naturalWidth,
                         image.clientHeight / image.naturalHeight);
  return {ratio: ratio, width: image.naturalWidth * ratio, height: image.naturalHeight * ratio};
}"""


def test_a_small_image_fills_its_pane_with_its_heatmap_over_it(live_server, page):
    from playwright.sync_api import expect

    # The factory's image is a few dozen pixels wide: far smaller than the pane.
    prediction = PredictionFactory.create(flagged=True, with_heatmap=True)
    image = prediction.image
    log_in(page, live_server.url, image.case.created_by)
    page.goto(f"{live_server.url}/cases/{image.case_id}/images/{image.pk}/view/")

    # Nothing to compare: a line says so, and no empty pane takes half the width.
    expect(page.get_by_test_id("no-comparison")).to_be_visible()
    expect(page.get_by_test_id("viewer-compare")).to_have_count(0)
    main = page.get_by_test_id("viewer-main")
    viewport = main.get_by_test_id("zoom-viewport").bounding_box()
    assert viewport["width"] > page.viewport_size["width"] * 0.6

    picture = main.get_by_role("img", name=re.compile("^Image 1 of 1"))
    expect(picture).to_have_js_property("complete", True)
    drawn = picture.evaluate(DRAWN)
    # Grown to the pane at the start zoom, its shape kept: it touches two of the pane's sides.
    assert drawn["ratio"] > 2
    assert drawn["width"] == pytest.approx(viewport["width"], abs=2) or drawn["height"] == (
        pytest.approx(viewport["height"], abs=2)
    )
    main.get_by_label("Show heatmap").check()
    overlay = main.get_by_test_id("heatmap")
    expect(overlay).to_be_visible()
    expect(overlay).to_have_js_property("complete", True)
    main.get_by_role("button", name="Zoom in").click()
    # Both boxes read at one moment: the zoom may still be easing in.
    boxes = main.get_by_test_id("zoom-stage").evaluate(
        """stage => Array.from(stage.querySelectorAll("img"), (image) => {
             const box = image.getBoundingClientRect();
             return [box.x, box.y, box.width, box.height];
           })"""
    )
    assert boxes[1] == pytest.approx(boxes[0], abs=1)
    # The same shape fitted into the same box: drawn the same size, so exactly over it.
    overlay_drawn, picture_drawn = overlay.evaluate(DRAWN), picture.evaluate(DRAWN)
    for side in ("width", "height"):
        assert overlay_drawn[side] == pytest.approx(picture_drawn[side], abs=1)


def test_the_compare_strip_keeps_each_pictures_shape(live_server, page):
    from playwright.sync_api import expect

    _, _, third = lesion_followed_over_time()
    log_in(page, live_server.url, third.image.case.created_by)
    page.goto(f"{live_server.url}/cases/{third.image.case_id}/images/{third.image_id}/view/")
    thumbnails = page.get_by_test_id("image-strip").get_by_role("img")
    expect(thumbnails).to_have_count(2)
    for thumbnail in thumbnails.all():
        expect(thumbnail).to_have_js_property("complete", True)
        shape = thumbnail.evaluate(
            """image => ({box: image.clientWidth / image.clientHeight,
                         natural: image.naturalWidth / image.naturalHeight,
                         fit: getComputedStyle(image).objectFit})"""
        )
        # Drawn at its own shape, never stretched to the width of the label beside it: its
        # box has that shape, or the picture is fitted into the box.
        assert shape["fit"] in ("contain", "cover") or shape["box"] == pytest.approx(
            shape["natural"], rel=0.02
        ), shape
        assert thumbnail.bounding_box()["height"] <= 100
