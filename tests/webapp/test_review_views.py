import re

from django.urls import reverse

from tests.webapp.conftest import login
from tests.webapp.factories import CaseFactory, PredictionFactory, ReviewFactory
from webapp.audit.models import AuditAction, AuditEvent
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


def test_applying_the_filters_pushes_an_address_without_the_blank_fields(reviewer, flagged_case):
    response = login(reviewer).get(
        reverse("reviews:queue"),
        {"state": "all", "ordering": "-probability", "flagged_from": "", "flagged_to": ""},
        headers={**HTMX, "HX-Trigger": "queue-filters"},
    )
    assert response.status_code == 200
    assert response["HX-Push-Url"] == reverse("reviews:queue") + "?state=all&ordering=-probability"
    # The poll keeps the same short query, and a poll pushes nothing.
    assert "flagged_from=" not in response.text
    poll = login(reviewer).get(reverse("reviews:queue"), {"flagged_to": ""}, headers=HTMX)
    assert "HX-Push-Url" not in poll


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
        {f"decision_{flagged_prediction.pk}": "refer", "note": "urgent", "then": "stay"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("cases:detail", args=[flagged_case.pk])
    review = Review.objects.get(case=flagged_case)
    assert (review.decision, review.note, review.reviewer) == ("refer", "urgent", reviewer)
    flagged_case.refresh_from_db()
    assert flagged_case.review_state == ReviewState.REVIEWED
    assert AuditEvent.objects.filter(
        case=flagged_case, action=AuditAction.REVIEW_RECORDED, actor=reviewer
    ).exists()


def test_it_hides_the_review_form_from_clinicians(clinician, flagged_case):
    page = login(clinician).get(reverse("cases:detail", args=[flagged_case.pk]))
    assert 'id="review-form"' not in page.text


def test_it_names_the_model_beside_each_queued_score(reviewer, flagged_case):
    text = login(reviewer).get(reverse("reviews:queue")).text
    assert "Test model · test-1" in text


def decision_fields(page_text: str) -> list[str]:
    """The names of the review form's decision fields, in page order."""
    form = page_text[page_text.index('id="review-form"') :]
    return list(dict.fromkeys(re.findall(r'name="(decision_\d+)"', form)))


def test_the_review_form_asks_one_decision_per_flagged_or_gated_image(reviewer):
    flagged = PredictionFactory.create(flagged=True)
    case = flagged.image.case
    gated = PredictionFactory.create(image__case=case, gated=True)
    PredictionFactory.create(image__case=case, done=True)
    PredictionFactory.create(image__case=case)
    case_queue_refresh(case_id=case.pk)
    page = login(reviewer).get(reverse("cases:detail", args=[case.pk]))
    assert decision_fields(page.text) == [f"decision_{flagged.pk}", f"decision_{gated.pk}"]
    # Each decision says what it agrees or disagrees with.
    assert "Agree \u2014 the model\u2019s high-risk flag stands" in page.text
    assert "Disagree — not high risk" in page.text
    assert "Agree — the model cannot judge this image: a better one is needed" in page.text
    assert page.text.count('data-testid="review-row"') == 2
    assert "Save and next" in page.text
    # The shortcuts are listed on the page.
    assert 'data-testid="shortcut-help"' in page.text
    assert "js/review-keys.js" in page.text


def test_one_submission_records_a_review_per_image(reviewer):
    first = PredictionFactory.create(flagged=True)
    case = first.image.case
    second = PredictionFactory.create(image__case=case, flagged=True, probability=0.7)
    case_queue_refresh(case_id=case.pk)
    response = login(reviewer).post(
        reverse("cases:review", args=[case.pk]),
        {f"decision_{first.pk}": "agree", f"decision_{second.pk}": "disagree", "note": "both"},
    )
    assert response.status_code == 302
    assert dict(Review.objects.values_list("prediction_id", "decision")) == {
        first.pk: "agree",
        second.pk: "disagree",
    }
    assert set(Review.objects.values_list("note", flat=True)) == {"both"}
    case.refresh_from_db()
    assert case.review_state == ReviewState.REVIEWED


def test_an_image_left_without_a_decision_keeps_the_case_waiting(reviewer):
    first = PredictionFactory.create(flagged=True)
    case = first.image.case
    PredictionFactory.create(image__case=case, flagged=True)
    case_queue_refresh(case_id=case.pk)
    response = login(reviewer).post(
        reverse("cases:review", args=[case.pk]), {f"decision_{first.pk}": "agree"}
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.review_state == ReviewState.UNREVIEWED


def test_save_and_next_says_how_many_images_of_the_case_still_need_a_decision(reviewer):
    first = PredictionFactory.create(flagged=True)
    case = first.image.case
    for _ in range(2):
        PredictionFactory.create(image__case=case, flagged=True)
    case_queue_refresh(case_id=case.pk)
    response = login(reviewer).post(
        reverse("cases:review", args=[case.pk]),
        {f"decision_{first.pk}": "agree", "then": "next"},
        follow=True,
    )
    # The case still heads the queue, so "next" opens it again, saying why.
    assert response.redirect_chain[-1][0].startswith(reverse("cases:detail", args=[case.pk]))
    assert "Review recorded. 2 images of this case still need a decision." in response.text


def test_a_form_without_any_decision_is_refused_with_400(reviewer, flagged_case):
    response = login(reviewer).post(reverse("cases:review", args=[flagged_case.pk]), {"note": "x"})
    assert response.status_code == 400
    # Said once, in the review panel, not again in a banner above the page.
    assert response.text.count("Choose a decision for at least one image") == 1
    assert not Review.objects.exists()


def test_a_new_decision_supersedes_the_standing_one_on_the_case_page(reviewer, flagged_case):
    prediction = flagged_case.images.get().predictions.get()
    first = ReviewFactory.create(prediction=prediction, case=flagged_case, decision="agree")
    client = login(reviewer)
    page = client.get(reverse("cases:detail", args=[flagged_case.pk]))
    assert 'data-testid="standing-review"' in page.text
    client.post(
        reverse("cases:review", args=[flagged_case.pk]), {f"decision_{prediction.pk}": "refer"}
    )
    first.refresh_from_db()
    second = Review.objects.get(superseded_at=None)
    assert first.superseded_by == second
    page = client.get(reverse("cases:detail", args=[flagged_case.pk]))
    assert f'data-review-id="{first.pk}" data-standing="false"' in page.text
    assert f'data-review-id="{second.pk}" data-standing="true"' in page.text
    assert page.text.count('data-testid="review-superseded"') == 1


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
    # Offered without a number.
    assert decision_fields(page.text) == [f"decision_{score.pk}"]
    form = page.text[page.text.index('id="review-form"') :]
    assert "Not a dermoscopic image the model can judge." in form
    assert "0.900" not in form

    response = client.post(
        reverse("cases:review", args=[case.pk]),
        {f"decision_{score.pk}": "follow_up", "note": "Asked for a new photo."},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.review_state == ReviewState.REVIEWED
    bucket = client.get(reverse("reviews:queue"), {"state": "needs_image"})
    assert f'data-case-id="{case.pk}"' not in bucket.text


def test_each_queue_row_shows_its_flagged_images_and_counts(reviewer):
    flagged = PredictionFactory.create(flagged=True)
    case = flagged.image.case
    gated = PredictionFactory.create(image__case=case, gated=True)
    low = PredictionFactory.create(image__case=case, done=True)
    ReviewFactory.create(prediction=flagged, case=case)
    ReviewFactory.create(prediction=flagged, case=case)
    case_queue_refresh(case_id=case.pk)
    text = login(reviewer).get(reverse("reviews:queue"), {"state": "all"}).text
    row = text[text.index(f'data-case-id="{case.pk}"') :]
    row = row[: row.index("</tr>")]
    thumbnails = re.findall(r'data-testid="queue-thumbnail" src="([^"]+)"', row)
    assert thumbnails == [
        reverse("cases:image-thumbnail", args=[case.pk, image.pk])
        for image in (flagged.image, gated.image)
    ]
    assert reverse("cases:image-thumbnail", args=[case.pk, low.image_id]) not in row
    # Two reviews of one score: one stands, so one is counted.
    assert "3 images · 2 flagged · 1 reviewed" in row
    assert '<strong data-testid="queue-total">1 case</strong> matches' in text


def test_a_flagged_row_says_how_many_images_still_need_a_better_one(reviewer):
    flagged = PredictionFactory.create(flagged=True)
    case = flagged.image.case
    gated = [PredictionFactory.create(image__case=case, gated=True) for _ in range(2)]
    quiet = PredictionFactory.create(flagged=True)
    case_queue_refresh(case_id=quiet.image.case_id)
    case_queue_refresh(case_id=case.pk)
    client = login(reviewer)

    def marker(case_id: int) -> str:
        text = client.get(reverse("reviews:queue")).text
        row = text[text.index(f'data-case-id="{case_id}"') :]
        found = re.search(r'data-testid="queue-needs-image">([^<]+)<', row[: row.index("</tr>")])
        return found.group(1) if found else ""

    # The flagged score heads the row; the images the gate turned away are counted beside it.
    assert marker(case.pk) == "2 images need a better image"
    assert marker(quiet.image.case_id) == ""
    ReviewFactory.create(prediction=gated[0], case=case, decision="follow_up")
    assert marker(case.pk) == "1 image needs a better image"


def test_the_queue_says_how_many_cases_match_and_starts_at_the_first_free_one(reviewer):
    for _ in range(3):
        case = CaseFactory.create()
        PredictionFactory.create(image__case=case, flagged=True)
        case_queue_refresh(case_id=case.pk)
    text = login(reviewer).get(reverse("reviews:queue"), {"ordering": "-flagged"}).text
    assert '<strong data-testid="queue-total">3 cases</strong> match' in text
    assert f'href="{reverse("reviews:next")}?ordering=-flagged"' in text
    # Each row opens its case carrying the queue it came from.
    assert "?queue=ordering%3D-flagged" in text


def test_the_queue_bands_each_score_against_its_threshold(reviewer):
    bands = {}
    for probability in (0.55, 0.8, 0.97):
        case = CaseFactory.create()
        PredictionFactory.create(image__case=case, flagged=True, probability=probability)
        bands[case_queue_refresh(case_id=case.pk).pk] = probability
    text = login(reviewer).get(reverse("reviews:queue")).text
    found = {
        int(case_id): band
        for case_id, band in re.findall(
            r'data-case-id="(\d+)".*?data-band="(\w+)"', text, flags=re.DOTALL
        )
    }
    assert sorted(found.values()) == ["borderline", "high", "very_high"]
    assert [found[case_id] for case_id in sorted(bands, key=lambda pk: bands[pk])] == [
        "borderline",
        "high",
        "very_high",
    ]
