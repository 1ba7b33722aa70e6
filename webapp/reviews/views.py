from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django_htmx.http import push_url

from webapp.accounts.decorators import role_required
from webapp.accounts.roles import request_user, user_can_review
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record_list_view
from webapp.cases.models import Case, Image, ReviewState
from webapp.cases.selectors import image_labels
from webapp.lib.htmx import HtmxHttpRequest
from webapp.reviews.forms import QueueFilterForm
from webapp.reviews.queries import QueueQuery
from webapp.reviews.risk import RiskBand, risk_band
from webapp.reviews.selectors import queue_list
from webapp.reviews.services import queue_next_claim
from webapp.scoring.models import GATE_MESSAGES

QUEUE_PAGE_SIZE = 20

# The queue page's filter form, as htmx names the element that sent a request.
QUEUE_FILTER_FORM_ID = "queue-filters"


@dataclass(frozen=True)
class QueueRow:
    """A case as its queue row shows it."""

    case: Case
    url: str
    # The image the row names, and why the model could not judge it when that is what the
    # case waits for.
    image_label: str
    gate_message: str
    band: RiskBand | None
    thumbnails: list[tuple[Image, str]]
    taken_by_me: bool


@require_GET
@role_required(user_can_review)
def queue_view(request: HtmxHttpRequest) -> HttpResponse:
    form = QueueFilterForm(request.GET)
    if form.is_valid():
        query = QueueQuery.from_form(form)
        cases = queue_list(**query.as_kwargs(), with_images=True)
    else:
        # Refused filters list nothing: a queue shown without them would pass for the
        # filtered one. The page says what to fix instead.
        query = QueueQuery()
        cases = Case.objects.none()
    page = Paginator(cases, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    viewer = request_user(request)
    audit_record_list_view(
        action=AuditAction.QUEUE_VIEWED,
        viewer=viewer,
        via="poll" if request.htmx else "page",
        case_ids=[case.pk for case in page],
    )
    labels = image_labels(case_ids=[case.pk for case in page]).by_image
    rows = [
        QueueRow(
            case=case,
            url=query.case_url(case.pk),
            image_label=labels.get(_queue_image_id(case), ""),
            gate_message=GATE_MESSAGES.get(_gate_reason(case), ""),
            band=risk_band(
                probability=case.top_probability, threshold=getattr(case, "top_threshold", None)
            ),
            thumbnails=[
                (image, labels.get(image.pk, "")) for image in getattr(case, "queued_images", [])
            ],
            taken_by_me=getattr(case, "claim_reviewer_id", None) == viewer.pk,
        )
        for case in page
    ]
    # The filters as given, less the page and the fields left blank: a blank field is the
    # default, and "&flagged_from=&flagged_to=" would only clutter the address.
    raw_query = QueryDict(mutable=True)
    for key, values in request.GET.lists():
        if key != "page" and any(values):
            raw_query.setlist(key, [value for value in values if value])
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "query": raw_query.urlencode(),
        # "Start reviewing" works through the queue as filtered and ordered here.
        "next_url": query.next_url(),
    }
    template = "reviews/queue.html#queue" if request.htmx else "reviews/queue.html"
    response = render(request, template, context, status=200 if form.is_valid() else 400)
    if request.htmx and request.htmx.trigger == QUEUE_FILTER_FORM_ID:
        # htmx would push the form's every field; the address bar gets the same short query.
        query_string = raw_query.urlencode()
        push_url(response, reverse("reviews:queue") + (f"?{query_string}" if query_string else ""))
    return response


@require_GET
@role_required(user_can_review)
def queue_next_view(request: HtmxHttpRequest) -> HttpResponse:
    """Take the first case of the queue that no one holds and open it; back to the queue
    when none is left."""
    form = QueueFilterForm(request.GET)
    if not form.is_valid():
        # The queue page shows what is wrong with the filters.
        return redirect(f"{reverse('reviews:queue')}?{request.GET.urlencode()}")
    query = QueueQuery.from_form(form)
    case = queue_next_claim(reviewer=request_user(request), **query.as_kwargs())
    if case is None:
        messages.info(
            request,
            "No case is left to review in this queue: each one is reviewed or taken by "
            "another reviewer.",
        )
        return redirect(query.queue_url())
    return redirect(query.case_url(case.pk))


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
