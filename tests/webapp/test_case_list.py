from __future__ import annotations

import pytest
from django.urls import reverse

from tests.webapp.conftest import login
from tests.webapp.factories import CaseFactory, ImageFactory, PredictionFactory, ReviewFactory
from webapp.cases.services import case_queue_refresh, image_withdraw

pytestmark = pytest.mark.django_db


def row_of(page: str, case_id: int) -> str:
    start = page.index(f'data-case-id="{case_id}"')
    return page[start : page.index("</tr>", start)]


def test_each_case_shows_its_top_score_review_status_and_image_count(clinician, reviewer):
    flagged = PredictionFactory.create(image__case__created_by=clinician, flagged=True)
    case = flagged.image.case
    ImageFactory.create(case=case)
    ReviewFactory.create(prediction=flagged, case=case, decision="refer")
    case_queue_refresh(case_id=case.pk)
    quiet = CaseFactory.create(created_by=clinician)

    page = login(clinician).get(reverse("cases:list")).text

    row = row_of(page, case.pk)
    assert 'data-testid="image-count">2<' in row
    assert "0.900" in row
    assert "High risk" in row
    assert "Refer" in row
    assert "Flagged, reviewed" in row
    quiet_row = row_of(page, quiet.pk)
    assert 'data-testid="image-count">0<' in quiet_row
    assert "None yet" in quiet_row


def test_a_flagged_case_shows_its_highest_score_not_its_newest(clinician):
    flagged = PredictionFactory.create(
        image__case__created_by=clinician, flagged=True, probability=0.8
    )
    case = flagged.image.case
    # Uploaded and scored later: a lower score, and an image the input gate turned away.
    PredictionFactory.create(image__case=case, done=True, probability=0.026)
    PredictionFactory.create(image__case=case, gated=True, probability=0.95)
    case_queue_refresh(case_id=case.pk)

    page = login(clinician).get(reverse("cases:list")).text

    assert "<th>Top score</th>" in page
    row = row_of(page, case.pk)
    assert 'data-testid="top-score">0.800 <span class="badge high-risk">High risk</span>' in row
    assert "0.026" not in row
    # The gated image's number is no risk: it shows as the image it is missing.
    assert "0.950" not in row
    assert "Needs a better image" in row


def test_a_withdrawn_image_counts_for_neither_score_nor_images(clinician):
    flagged = PredictionFactory.create(image__case__created_by=clinician, flagged=True)
    PredictionFactory.create(image__case=flagged.image.case, done=True, probability=0.2)
    image_withdraw(image=flagged.image, withdrawn_by=clinician, reason="Wrong lesion.")

    row = row_of(login(clinician).get(reverse("cases:list")).text, flagged.image.case_id)

    assert 'data-testid="image-count">1<' in row
    assert "0.200" in row
    assert "High risk" not in row


def test_the_search_finds_cases_by_subject_and_pages_keep_it(clinician):
    for n in range(25):
        CaseFactory.create(created_by=clinician, subject_ref=f"KEEP-{n:02d}")
    CaseFactory.create(created_by=clinician, subject_ref="OTHER-1")
    client = login(clinician)

    first = client.get(reverse("cases:list"), {"q": "keep"})

    assert first.status_code == 200
    assert "OTHER-1" not in first.text
    assert first.context["page"].paginator.count == 25
    assert 'href="?q=keep&amp;page=2"' in first.text
    second = client.get(reverse("cases:list"), {"q": "keep", "page": "2"})
    assert len(second.context["page"]) == 5
    assert 'value="keep"' in second.text


def test_a_search_finding_nothing_says_so(clinician):
    CaseFactory.create(created_by=clinician, subject_ref="P-1")
    page = login(clinician).get(reverse("cases:list"), {"q": "zzz"}).text
    assert "No case's subject reference contains “zzz”." in page


def test_a_search_too_long_is_refused_with_a_message(clinician):
    response = login(clinician).get(reverse("cases:list"), {"q": "x" * 65})
    assert response.status_code == 400
    assert "at most 64 characters" in response.text
