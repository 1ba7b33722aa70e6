"""Every page names an image the same way: its place in the case and its file name."""

import pytest
from django.urls import reverse

from tests.webapp.conftest import login
from tests.webapp.factories import CaseFactory, ImageFactory, PredictionFactory
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.cases.models import Case
from webapp.cases.selectors import image_labels
from webapp.cases.services import case_queue_refresh
from webapp.reviews.models import Decision
from webapp.reviews.services import review_create
from webapp.scoring.models import Prediction

pytestmark = pytest.mark.django_db

LABEL = "Image 2 of 3 (back.jpg)"


@pytest.fixture
def case_of_three() -> tuple[Case, Prediction]:
    """A case of three images whose second is flagged; its score is not yet reviewed."""
    # Images of another case first, so that no image id reads as its place in this case.
    ImageFactory.create_batch(3)
    case = CaseFactory.create()
    ImageFactory.create(case=case, original_filename="front.jpg")
    flagged = PredictionFactory.create(
        image__case=case, image__original_filename="back.jpg", flagged=True
    )
    PredictionFactory.create(image__case=case, image__original_filename="side.jpg", done=True)
    assert flagged.image_id != 2
    return case_queue_refresh(case_id=case.pk), flagged


def test_labels_count_images_in_upload_order_within_each_case(case_of_three):
    case, flagged = case_of_three
    other = PredictionFactory.create(image__original_filename="only.jpg", done=True)
    labels = image_labels(case_ids=[case.pk, other.image.case_id])
    assert sorted(labels.by_image.values()) == [
        "Image 1 of 1 (only.jpg)",
        "Image 1 of 3 (front.jpg)",
        LABEL,
        "Image 3 of 3 (side.jpg)",
    ]
    assert labels.by_prediction[flagged.pk] == LABEL


def test_the_case_page_names_the_image_alike_on_its_card_form_review_and_timeline(
    case_of_three, reviewer
):
    case, flagged = case_of_three
    audit_record(
        action=AuditAction.IMAGE_VIEWED,
        actor=reviewer,
        case=case,
        data={"image_id": flagged.image_id},
    )
    review_create(case=case, prediction=flagged, reviewer=reviewer, decision=Decision.AGREE)
    page = login(reviewer).get(reverse("cases:detail", args=[case.pk])).text
    card = page[page.index(f'data-image-id="{flagged.image_id}"') :]
    assert f'alt="{LABEL}"' in card[: card.index("</figure>")]
    reviews = page[page.index("<h2>Reviews</h2>") : page.index('id="timeline"')]
    assert f"({LABEL})" in reviews
    form = page[
        page.index('id="review-form"') : page.index("</form>", page.index('id="review-form"'))
    ]
    assert f"<legend>{LABEL}</legend>" in form
    assert "Decided: <strong>Agree</strong>" in form
    timeline = page[page.index('id="timeline"') :]
    assert f"Image viewed · {LABEL}" in timeline
    assert f"Review recorded · {LABEL}" in timeline
    assert f"Image {flagged.image_id}:" not in page


def test_the_timeline_fragment_names_images_too(case_of_three, reviewer):
    case, flagged = case_of_three
    audit_record(
        action=AuditAction.IMAGE_VIEWED,
        actor=reviewer,
        case=case,
        data={"image_id": flagged.image_id},
    )
    fragment = login(reviewer).get(reverse("cases:timeline", args=[case.pk])).text
    # Reading the fragment is a view too: the two fold into one entry, which names the image.
    assert f"Viewed 2 times by {reviewer.username}, " in fragment
    assert f" · {LABEL}</li>" in fragment


def test_the_queue_names_the_top_flagged_image(case_of_three, reviewer):
    case, _ = case_of_three
    page = login(reviewer).get(reverse("reviews:queue")).text
    row = page[page.index(f'data-case-id="{case.pk}"') :]
    assert f'<td data-testid="queue-top-image">{LABEL}</td>' in row[: row.index("</tr>")]
