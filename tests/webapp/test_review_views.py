import re

from django.urls import reverse

from tests.webapp.conftest import login
from tests.webapp.factories import CaseFactory, PredictionFactory, ReviewFactory
from webapp.cases.models import ReviewState
from webapp.cases.services import case_queue_refresh
from webapp.reviews.models import Review

HTMX = {"HX-Request": "true"}


def test_it_lists_flagged_unreviewed_cases_in_the_queue(reviewer, flagged_case):
    response = login(reviewer).get(reverse("reviews:queue"))
    assert f'data-case-id="{flagged_case.pk}"' in response.text
    assert 'hx-trigger="every 10s"' in response.text


def test_it_answers_queue_polls_with_the_fragment_only(reviewer, flagged_case):
    response = login(reviewer).get(reverse("reviews:queue"), {"state": "all"}, headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert f'data-case-id="{flagged_case.pk}"' in response.text
    # The fragment keeps polling with the same filters.
    assert "state=all" in response.text


def test_it_sorts_the_queue_by_probability(reviewer):
    cases = []
    for probability in (0.55, 0.99, 0.7):
        case = CaseFactory.create()
        PredictionFactory.create(image__case=case, flagged=True, probability=probability)
        cases.append(case_queue_refresh(case_id=case.pk))
    text = login(reviewer).get(reverse("reviews:queue"), {"ordering": "-probability"}).text
    positions = [text.index(f'data-case-id="{case.pk}"') for case in cases]
    assert positions[1] < positions[2] < positions[0]


def test_it_paginates_the_queue(reviewer):
    for _ in range(21):
        case = CaseFactory.create()
        PredictionFactory.create(image__case=case, flagged=True)
        case_queue_refresh(case_id=case.pk)
    text = login(reviewer).get(reverse("reviews:queue")).text
    assert text.count('data-testid="queue-row"') == 20
    assert "Page 1 of 2" in text


def test_it_records_a_decision_from_the_case_page(reviewer, flagged_case, flagged_prediction):
    client = login(reviewer)
    page = client.get(reverse("cases:detail", args=[flagged_case.pk]))
    assert 'id="review-form"' in page.text
    response = client.post(
        reverse("cases:review", args=[flagged_case.pk]),
        {"prediction": flagged_prediction.pk, "decision": "refer", "note": "urgent"},
    )
    assert response.status_code == 302
    review = Review.objects.get(case=flagged_case)
    assert (review.decision, review.note, review.reviewer) == ("refer", "urgent", reviewer)
    flagged_case.refresh_from_db()
    assert flagged_case.review_state == ReviewState.REVIEWED


def test_it_hides_the_review_form_from_clinicians(clinician, flagged_case):
    page = login(clinician).get(reverse("cases:detail", args=[flagged_case.pk]))
    assert 'id="review-form"' not in page.text


def test_it_names_the_model_beside_each_queued_score(reviewer, flagged_case):
    text = login(reviewer).get(reverse("reviews:queue")).text
    assert "Test model · test-1" in text


def selected_scores(page_text: str) -> list[str]:
    """The values of the review form's preselected score options."""
    form = page_text[page_text.index('id="review-form"') :]
    return re.findall(r'<option value="(\d*)" selected>', form)


def test_the_review_form_preselects_the_flagged_score_still_awaiting_review(reviewer):
    reviewed = PredictionFactory.create(flagged=True, probability=0.95)
    case = reviewed.image.case
    ReviewFactory.create(prediction=reviewed, case=case)
    waiting = PredictionFactory.create(image__case=case, flagged=True, probability=0.7)
    case_queue_refresh(case_id=case.pk)
    page = login(reviewer).get(reverse("cases:detail", args=[case.pk]))
    assert selected_scores(page.text) == [str(waiting.pk)]
    assert "high risk, reviewed" in page.text


def test_the_review_form_preselects_nothing_once_every_flagged_score_is_reviewed(reviewer):
    reviewed = PredictionFactory.create(flagged=True)
    case = reviewed.image.case
    ReviewFactory.create(prediction=reviewed, case=case)
    PredictionFactory.create(image__case=case, done=True)
    page = login(reviewer).get(reverse("cases:detail", args=[case.pk]))
    # The placeholder is selected: the reviewer must choose a score.
    assert selected_scores(page.text) == [""]
    assert '<option value="" selected>Choose a score</option>' in page.text


def gated_case(**prediction: object):
    """A case with one image the input gate turned away, in its bucket."""
    score = PredictionFactory.create(gated=True, **prediction)
    return case_queue_refresh(case_id=score.image.case_id), score


def test_the_queue_has_a_bucket_for_cases_that_need_a_better_image(reviewer, flagged_case):
    case, _ = gated_case()
    client = login(reviewer)

    unreviewed = client.get(reverse("reviews:queue"))
    assert f'data-case-id="{case.pk}"' not in unreviewed.text
    assert f'data-case-id="{flagged_case.pk}"' in unreviewed.text
    assert '<option value="needs_image">Needs a better image</option>' in unreviewed.text

    bucket = client.get(reverse("reviews:queue"), {"state": "needs_image"})
    assert bucket.status_code == 200
    assert f'data-case-id="{case.pk}"' in bucket.text
    assert f'data-case-id="{flagged_case.pk}"' not in bucket.text
    # The reason takes the probability's place: the score of such an image is no risk.
    assert "Not a dermoscopic image the model can judge." in bucket.text
    assert "0.900" not in bucket.text
    assert "Image 1 of 1 (lesion.jpg)" in bucket.text


def test_a_reviewer_can_decide_on_an_image_that_needs_a_better_one(reviewer):
    case, score = gated_case()
    client = login(reviewer)
    page = client.get(reverse("cases:detail", args=[case.pk]))
    # Preselected, and offered without a number.
    assert selected_scores(page.text) == [str(score.pk)]
    assert "needs a better image (Not a dermoscopic image the model can judge)" in page.text
    assert "90.0%" not in page.text

    response = client.post(
        reverse("cases:review", args=[case.pk]),
        {"prediction": score.pk, "decision": "follow_up", "note": "Asked for a new photo."},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.review_state == ReviewState.REVIEWED
    bucket = client.get(reverse("reviews:queue"), {"state": "needs_image"})
    assert f'data-case-id="{case.pk}"' not in bucket.text
