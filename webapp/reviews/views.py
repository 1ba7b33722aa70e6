from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.accounts.decorators import role_required
from webapp.accounts.models import User
from webapp.accounts.roles import user_can_review
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record_list_view
from webapp.cases.models import Case
from webapp.cases.selectors import case_get, image_labels
from webapp.cases.views import case_page_refused
from webapp.lib.htmx import HtmxHttpRequest
from webapp.reviews.forms import QueueFilterForm, ReviewForm
from webapp.reviews.models import Decision
from webapp.reviews.selectors import (
    QueueFilter,
    QueueOrdering,
    case_reviewable_predictions,
    queue_list,
)
from webapp.reviews.services import review_create

QUEUE_PAGE_SIZE = 20


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


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
        viewer=_user(request),
        via="poll" if request.htmx else "page",
        case_ids=[case.pk for case in page],
    )
    labels = image_labels(case_ids=[case.pk for case in page]).by_image
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        # top_image_id is queue_list's annotation: the image of the case's top flagged score.
        "labelled_cases": [(case, labels.get(getattr(case, "top_image_id", 0))) for case in page],
        "query": query.urlencode(),
    }
    template = "reviews/queue.html#queue" if request.htmx else "reviews/queue.html"
    return render(request, template, context, status=200 if form.is_valid() else 400)


@require_POST
@role_required(user_can_review)
def review_create_view(request: HttpRequest, case_id: int) -> HttpResponse:
    try:
        case = case_get(user=_user(request), case_id=case_id)
    except Case.DoesNotExist as exc:
        raise Http404("No such case.") from exc
    form = ReviewForm(
        request.POST,
        predictions=case_reviewable_predictions(case=case),
        image_labels=image_labels(case_ids=[case.pk]).by_prediction,
    )
    if not form.is_valid():
        errors = []
        for name, field_errors in form.errors.as_data().items():
            text = " ".join(message for error in field_errors for message in error.messages)
            label = form.fields[name].label if name in form.fields else None
            errors.append(f"{label}: {text}" if label else text)
        return case_page_refused(
            request, case, ["Choose a score and a decision to record a review.", *errors]
        )
    try:
        review_create(
            case=case,
            prediction=form.cleaned_data["prediction"],
            reviewer=_user(request),
            decision=Decision(form.cleaned_data["decision"]),
            note=form.cleaned_data["note"],
        )
    except ValidationError as exc:
        return case_page_refused(request, case, exc.messages)
    messages.success(request, "Review recorded.")
    return redirect("cases:detail", case_id=case.pk)
