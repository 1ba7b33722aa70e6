from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.webapp.conftest import login
from tests.webapp.factories import CaseFactory, ImageFactory, PredictionFactory
from webapp.accounts.models import User
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import Case, Image
from webapp.cases.services import image_withdraw

pytestmark = pytest.mark.django_db


def lesion_over_time(owner: User, count: int = 3) -> tuple[Case, list[Image]]:
    """A case with `count` scored images, oldest first."""
    case = CaseFactory.create(created_by=owner)
    images = [
        PredictionFactory.create(image__case=case, done=True, probability=0.1 * (n + 1)).image
        for n in range(count)
    ]
    return case, images


def viewer_url(image: Image, **query: int) -> str:
    url = reverse("cases:image-viewer", args=[image.case_id, image.pk])
    return url + (f"?compare={query['compare']}" if query else "")


def test_it_shows_the_image_large_beside_the_one_before_it(clinician):
    case, (first, second, third) = lesion_over_time(clinician)

    response = login(clinician).get(viewer_url(third))

    assert response.status_code == 200
    assert response.context["compared"] == second
    page = response.text
    assert reverse("cases:image-file", args=[case.pk, third.pk]) in page
    assert reverse("cases:image-file", args=[case.pk, second.pk]) in page
    assert 'aria-label="Zoom in"' in page
    assert 'aria-label="Reset zoom"' in page
    assert "vendor/panzoom/panzoom-4.6.2.min.js" in page
    # The strip offers every other image, oldest first, as thumbnails.
    assert [other.pk for other, _, _ in response.context["strip"]] == [first.pk, second.pk]
    assert reverse("cases:image-thumbnail", args=[case.pk, first.pk]) in page
    assert "0.200" in page  # the compared image's score


def test_the_first_image_has_nothing_compared_until_one_is_chosen(clinician):
    _case, (first, second, _) = lesion_over_time(clinician)
    client = login(clinician)

    plain = client.get(viewer_url(first))
    assert plain.context["compared"] is None
    assert "Choose an image below to compare" in plain.text
    # One line says so; no empty pane takes half the screen beside the image.
    assert 'data-testid="no-comparison"' in plain.text
    assert 'data-testid="viewer-compare"' not in plain.text

    chosen = client.get(viewer_url(first, compare=second.pk))
    assert chosen.status_code == 200
    assert chosen.context["compared"] == second


def test_it_links_the_previous_and_next_images(clinician):
    _, (first, second, third) = lesion_over_time(clinician)
    page = login(clinician).get(viewer_url(second)).text
    assert f'rel="prev" data-testid="previous-image" href="{viewer_url(first)}"' in page
    assert f'rel="next" data-testid="next-image" href="{viewer_url(third)}"' in page
    first_page = login(clinician).get(viewer_url(first)).text
    assert 'rel="prev"' not in first_page


def test_it_refuses_a_comparison_with_an_image_of_another_case(clinician):
    _, (image, *_) = lesion_over_time(clinician)
    stranger = ImageFactory.create(case__created_by=clinician)
    client = login(clinician)

    for bad in (f"?compare={stranger.pk}", "?compare=abc", f"?compare={image.pk}"):
        response = client.get(viewer_url(image) + bad)
        assert response.status_code == 400, bad
        assert "compare" in response.text


def test_it_offers_the_heatmap_of_a_scored_image(clinician):
    prediction = PredictionFactory.create(
        image__case__created_by=clinician, flagged=True, with_heatmap=True
    )
    page = login(clinician).get(viewer_url(prediction.image)).text
    assert reverse("cases:heatmap-file", args=[prediction.image.case_id, prediction.pk]) in page
    assert 'data-testid="heatmap-toggle"' in page


def test_no_heatmap_is_offered_for_a_gated_or_withdrawn_image(clinician):
    gated = PredictionFactory.create(
        image__case__created_by=clinician, gated=True, with_heatmap=True
    )
    case = gated.image.case
    withdrawn = PredictionFactory.create(image__case=case, flagged=True, with_heatmap=True)
    image_withdraw(image=withdrawn.image, withdrawn_by=clinician, reason="Wrong lesion.")
    client = login(clinician)
    for prediction in (gated, withdrawn):
        page = client.get(viewer_url(prediction.image)).text
        assert 'data-testid="heatmap-toggle"' not in page
        assert reverse("cases:heatmap-file", args=[case.pk, prediction.pk]) not in page
    # Nor on the case page's cards.
    assert (
        'data-testid="heatmap-toggle"'
        not in client.get(reverse("cases:detail", args=[case.pk])).text
    )


def test_opening_the_viewer_is_recorded_as_a_view_of_the_image(clinician):
    _, (image, *_) = lesion_over_time(clinician)
    login(clinician).get(viewer_url(image))
    [event] = AuditEvent.objects.filter(action=AuditAction.IMAGE_VIEWED)
    assert (event.actor, event.data) == (clinician, {"image_id": image.pk, "via": "viewer"})


def test_the_viewer_is_refused_as_the_image_is(clinician, other_clinician, reviewer):
    _case, (image, *_) = lesion_over_time(clinician)
    assert login(other_clinician).get(viewer_url(image)).status_code == 404
    other_case = CaseFactory.create(created_by=clinician)
    assert (
        login(clinician)
        .get(reverse("cases:image-viewer", args=[other_case.pk, image.pk]))
        .status_code
        == 404
    )
    # Reviewers see every case, so every image.
    assert login(reviewer).get(viewer_url(image)).status_code == 200


def test_the_viewer_runs_the_same_queries_with_few_images_or_many(clinician):
    client = login(clinician)

    def queries(count: int) -> int:
        _, images = lesion_over_time(clinician, count)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(viewer_url(images[-1])).status_code == 200
        return len(captured)

    assert queries(2) == queries(9)
