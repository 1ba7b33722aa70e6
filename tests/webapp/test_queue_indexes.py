"""Every queue filter and ordering can be read from an index in order, with no sort."""

import pytest
from django.db import connection

from webapp.casework.seed import cases_seed
from webapp.reviews.selectors import QueueFilter, QueueOrdering, queue_list

pytestmark = pytest.mark.django_db


def plan_of_page(state: QueueFilter, ordering: QueueOrdering) -> str:
    """The plan of one queue page, where the planner may not scan the table or sort it."""
    page = queue_list(state=state, ordering=ordering)[:20]
    with connection.cursor() as cursor:
        # On a small table a sequential scan and a sort would win; forbidding both makes the
        # plan show whether an index can serve this filter and order on its own.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        plan = page.explain()
    # The subqueries naming each case's top model come after; only the case scan matters here.
    return plan.split("SubPlan")[0]


@pytest.mark.parametrize("state", list(QueueFilter))
@pytest.mark.parametrize("ordering", list(QueueOrdering))
def test_each_queue_page_is_an_ordered_index_read(state: QueueFilter, ordering: QueueOrdering):
    cases_seed(count=50)
    plan = plan_of_page(state, ordering)
    assert "Index Scan" in plan, plan
    assert "case_queue_" in plan, plan
    assert "Sort" not in plan, plan
