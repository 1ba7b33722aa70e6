from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from webapp.accounts.decorators import role_required
from webapp.accounts.roles import request_user, user_can_review
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record_list_view
from webapp.cases.models import Case, ReviewState
from webapp.cases.selectors import image_labels
from webapp.lib.htmx import HtmxHttpRequest
from webapp.reviews.forms import QueueFilterForm
from webapp.reviews.selectors import QueueFilter, QueueOrdering, queue_list
from webapp.scoring.models import GATE_MESSAGES

QUEUE_PAGE_SIZE = 20


@require_GET
@role_required(user_can_review)
def queue_view(request: HtmxHttpRequest) -> HttpResponse:
    form = QueueFilterForm(request.GET)
    if form.is_valid():
        filters = form.cleaned_data
        cases = queue_list(
            state=QueueFilter(filters.get("state") or QueueFilter.UNREVIEWED),
            ordering=QueueOrdering(filters.get("ordering") or QueueOrdering.PROBABILITY_DESC),
            flagged_from=filters.get("flagged_from"),
            flagged_to=filters.get("flagged_to"),
        )
    else:
        # Refused filters list nothing: a queue shown without them would pass for the
        # filtered one. The page says what to fix instead.
        cases = Case.objects.none()
    page = Paginator(cases, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    audit_record_list_view(
        action=AuditAction.QUEUE_VIEWED,
        viewer=request_user(request),
        via="poll" if request.htmx else "page",
        case_ids=[case.pk for case in page],
    )
    labels = image_labels(case_ids=[case.pk for case in page]).by_image
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        # Each case with the label of the image its row names, and why the model could not
        # judge that image when the case needs a better one.
        "labelled_cases": [
            (case, labels.get(_queue_image_id(case)), GATE_MESSAGES.get(_gate_reason(case), ""))
            for case in page
        ],
        "query": query.urlencode(),
    }
    template = "reviews/queue.html#queue" if request.htmx else "reviews/queue.html"
    return render(request, template, context, status=200 if form.is_valid() else 400)


def _queue_image_id(case: Case) -> int:
    """The image a queue row names: the one needing a better image while that is what the case
    waits for, else the image of its top flagged score (queue_list's annotations)."""
    if case.review_state == ReviewState.NEEDS_IMAGE:
        return getattr(case, "gated_image_id", None) or 0
    return getattr(case, "top_image_id", None) or 0


def _gate_reason(case: Case) -> str:
    if case.review_state != ReviewState.NEEDS_IMAGE:
        return ""
    return getattr(case, "gate_reason", None) or ""
