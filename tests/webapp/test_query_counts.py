"""Pages and API lists run a fixed number of queries, however many cases the database holds."""

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.webapp.conftest import api_client, login
from tests.webapp.factories import PredictionFactory, ReviewFactory
from webapp.accounts.models import User
from webapp.cases.models import Case, ReviewState
from webapp.cases.services import case_queue_refresh
from webapp.casework.seed import cases_seed

pytestmark = pytest.mark.django_db

# Big enough that every list below has a full first page (and a second) at both sizes.
SMALL, LARGE = 150, 600


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(queries)


def counts_at_two_sizes(request_queries: Callable[[], int]) -> tuple[int, int]:
    """Query counts for one request with SMALL seeded cases, then with LARGE."""
    cases_seed(count=SMALL, chunk_size=50)
    small = request_queries()
    cases_seed(count=LARGE, chunk_size=200)
    return small, request_queries()


@pytest.mark.parametrize(
    "url",
    [
        reverse("reviews:queue"),
        reverse("reviews:queue") + "?state=all&ordering=-flagged",
        reverse("reviews:queue") + "?state=reviewed&ordering=probability",
        reverse("cases:list"),
        reverse("cases:list") + "?q=1&page=2",
    ],
)
def test_the_review_pages_run_a_constant_number_of_queries(reviewer: User, url: str):
    client = login(reviewer)
    small, large = counts_at_two_sizes(lambda: queries_for(client, url))
    assert small == large


@pytest.mark.parametrize(
    "name",
    ["api:queue", "api:case-list", "api:review-list"],
)
@pytest.mark.parametrize("query", ["", "?page_size=100", "?page=2&page_size=5"])
def test_the_api_lists_run_a_constant_number_of_queries(reviewer: User, name: str, query: str):
    client = api_client(reviewer)
    url = reverse(name) + query
    small, large = counts_at_two_sizes(lambda: queries_for(client, url))
    assert small == large


def test_a_clinicians_case_list_runs_a_constant_number_of_queries(clinician: User):
    client = api_client(clinician)

    def own_cases(count: int) -> int:
        for _ in range(count):
            PredictionFactory.create(image__case__created_by=clinician, done=True)
        return queries_for(client, reverse("api:case-list"))

    assert own_cases(2) == own_cases(10)


def case_with_images(*, images: int, reviewed: bool) -> Case:
    """A flagged case with several scored images, some reviewed."""
    first = PredictionFactory.create(flagged=True)
    case = first.image.case
    for number in range(images - 1):
        PredictionFactory.create(image__case=case, flagged=number % 2 == 0, done=number % 2 == 1)
    if reviewed:
        ReviewFactory.create(prediction=first, case=case)
        ReviewFactory.create(prediction=first, case=case)
    return case_queue_refresh(case_id=case.pk)


@pytest.mark.parametrize(
    ("page", "api"),
    [
        ("cases:detail", False),
        ("cases:timeline", False),
        ("api:case-detail", True),
        ("api:case-images", True),
    ],
)
def test_a_case_runs_the_same_queries_with_few_images_or_many(reviewer: User, page: str, api: bool):
    client = api_client(reviewer) if api else login(reviewer)
    few = case_with_images(images=2, reviewed=True)
    many = case_with_images(images=8, reviewed=True)
    assert many.review_state == ReviewState.UNREVIEWED
    assert queries_for(client, reverse(page, args=[few.pk])) == queries_for(
        client, reverse(page, args=[many.pk])
    )


def test_the_case_page_polling_fragment_runs_a_constant_number_of_queries(clinician: User):
    client = login(clinician)
    few = case_with_images(images=2, reviewed=True)
    many = case_with_images(images=8, reviewed=True)
    Case.objects.filter(pk__in=[few.pk, many.pk]).update(created_by=clinician)

    def poll(case: Case) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("cases:detail", args=[case.pk]), HTTP_HX_REQUEST="true")
        assert response.status_code == 286
        return len(queries)

    assert poll(few) == poll(many)
