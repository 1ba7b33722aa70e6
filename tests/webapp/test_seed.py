from io import StringIO

import pytest
from django.core.management import call_command

from webapp.cases.models import Case, ReviewState
from webapp.cases.services import case_queue_refresh
from webapp.casework.seed import SEED_PREFIX, cases_seed
from webapp.reviews.models import Review
from webapp.scoring.models import Prediction

pytestmark = pytest.mark.django_db


def seeded() -> list[Case]:
    return list(Case.objects.filter(subject_ref__startswith=SEED_PREFIX).order_by("pk"))


def test_it_seeds_cases_with_images_scores_and_reviews():
    summary = cases_seed(count=200, chunk_size=64)
    assert summary.cases == summary.created == 200
    assert 0 < summary.unreviewed < summary.flagged < 200
    assert Prediction.objects.filter(image__case__in=seeded()).count() >= 200
    assert Review.objects.exists()


def test_it_is_idempotent_and_tops_up_to_the_count():
    cases_seed(count=30)
    assert cases_seed(count=30).created == 0
    summary = cases_seed(count=45)
    assert (summary.cases, summary.created) == (45, 15)
    assert len({case.subject_ref for case in seeded()}) == 45


def test_reset_replaces_the_earlier_seed():
    cases_seed(count=20)
    before = {case.pk for case in seeded()}
    summary = cases_seed(count=10, reset=True)
    assert summary.cases == 10
    assert before.isdisjoint(case.pk for case in seeded())


def test_the_queue_columns_match_what_scoring_and_reviews_would_set():
    cases_seed(count=120)
    for case in seeded():
        expected = (case.review_state, case.top_probability)
        refreshed = case_queue_refresh(case_id=case.pk)
        assert (refreshed.review_state, refreshed.top_probability) == expected
    assert {case.review_state for case in seeded()} == set(ReviewState)


def test_the_command_reports_what_it_seeded():
    out = StringIO()
    call_command("seed_cases", "--count", "25", "--chunk-size", "10", stdout=out)
    assert out.getvalue().startswith("25 seeded cases (25 new)")
