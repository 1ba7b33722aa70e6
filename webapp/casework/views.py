from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from webapp.accounts.decorators import role_required
from webapp.accounts.roles import request_user, user_can_review, user_can_upload
from webapp.audit.models import AuditAction
from webapp.audit.selectors import TIMELINE_LENGTH, audit_event_list
from webapp.audit.services import audit_record_list_view
from webapp.cases.models import Case, Image
from webapp.cases.selectors import ImageLabels, case_get, case_image_get, case_list, image_labels
from webapp.cases.services import case_create, case_record_view, image_record_view
from webapp.casework.forms import CaseForm, ImageUploadForm
from webapp.casework.responses import heatmap_file_response, image_file_response
from webapp.casework.selectors import case_image_list, case_scoring_in_progress
from webapp.casework.services import case_images_upload
from webapp.lib.htmx import HTMX_STOP_POLLING, HtmxHttpRequest
from webapp.reviews.forms import CaseReviewForm
from webapp.reviews.queries import CASE_PAGE_PARAMETER, QueueQuery
from webapp.reviews.selectors import case_claim_get, case_review_predictions, review_list
from webapp.reviews.services import case_claim, case_review_submit
from webapp.scoring.models import Prediction
from webapp.scoring.selectors import prediction_heatmap_get
from webapp.scoring.services import prediction_record_view


def _visible_case(request: HttpRequest, case_id: int) -> Case:
    try:
        return case_get(user=request_user(request), case_id=case_id)
    except Case.DoesNotExist as exc:
        raise Http404("No such case.") from exc


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Send reviewers to their queue and clinicians to their cases."""
    if user_can_review(request.user):
        return redirect("reviews:queue")
    return redirect("cases:list")


@require_GET
def case_list_view(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(case_list(user=request_user(request)), 20)
    page = paginator.get_page(request.GET.get("page"))
    audit_record_list_view(
        action=AuditAction.CASE_LIST_VIEWED,
        viewer=request_user(request),
        via="page",
        case_ids=[case.pk for case in page],
    )
    return render(request, "casework/case_list.html", {"page": page})


@require_http_methods(["GET", "POST"])
@role_required(user_can_upload)
def case_create_view(request: HttpRequest) -> HttpResponse:
    form = CaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        case = case_create(created_by=request_user(request), **form.cleaned_data)
        messages.success(request, "Case created. Add its images below.")
        return redirect("cases:detail", case_id=case.pk)
    # A refused form is shown again with its errors, as a 400 like the API's answer.
    status = 400 if request.method == "POST" else 200
    return render(request, "casework/case_create.html", {"form": form}, status=status)


def case_timeline_context(case: Case, labels: ImageLabels) -> dict[str, object]:
    """The history timeline: recent events, each with the label of the image it concerns."""
    timeline = list(audit_event_list(case=case, limit=TIMELINE_LENGTH))
    entries = []
    for event in timeline:
        data = event.data if isinstance(event.data, dict) else {}
        image_id, prediction_id = data.get("image_id"), data.get("prediction_id")
        label = None
        if isinstance(image_id, int):
            label = labels.by_image.get(image_id)
        elif isinstance(prediction_id, int):
            label = labels.by_prediction.get(prediction_id)
        entries.append((event, label))
    return {"timeline": timeline, "timeline_entries": entries, "timeline_length": TIMELINE_LENGTH}


def case_detail_context(
    request: HttpRequest, case: Case, review_form: CaseReviewForm | None = None
) -> dict[str, object]:
    """Everything the case page and its fragments render; `review_form` is a refused one to
    show again, with what was chosen in it."""
    images = list(case_image_list(case=case))
    # Read after the images, so every image listed has its label.
    labels = image_labels(case_ids=[case.pk])
    reviews = review_list(user=request_user(request), case_id=case.pk)
    context: dict[str, object] = {
        "case": case,
        "labelled_images": [
            (image, labels.by_image.get(image.pk, image.original_filename)) for image in images
        ],
        "scoring_in_progress": case_scoring_in_progress(case=case),
        "labelled_reviews": [
            (review, labels.by_prediction.get(review.prediction_id)) for review in reviews
        ],
        **case_timeline_context(case, labels),
        "can_upload": user_can_upload(request.user),
        "can_review": user_can_review(request.user),
    }
    if context["can_review"]:
        context.update(case_review_context(request, case, labels, review_form))
    if context["can_upload"]:
        context["upload_form"] = ImageUploadForm()
    return context


def case_review_context(
    request: HttpRequest, case: Case, labels: ImageLabels, review_form: CaseReviewForm | None
) -> dict[str, object]:
    """The review form, who holds the case, and the queue the reviewer came from."""
    if review_form is None:
        predictions = list(case_review_predictions(case=case))
        if predictions:
            review_form = CaseReviewForm(predictions=predictions, image_labels=labels.by_prediction)
    claim = case_claim_get(case=case)
    query = _queue_query(request)
    return {
        "review_form": review_form,
        "claim": claim,
        "claim_is_mine": claim is not None and claim.reviewer_id == request_user(request).pk,
        "queue_query": query.urlencode(),
        "queue_url": query.queue_url(),
        "next_case_url": query.next_url(),
    }


def _queue_query(request: HttpRequest) -> QueueQuery:
    """The queue the reviewer opened the case from, carried in the page's URL and its form."""
    data = request.POST if request.method == "POST" else request.GET
    return QueueQuery.parse(data.get(CASE_PAGE_PARAMETER, ""))


@require_GET
def case_detail_view(request: HtmxHttpRequest, case_id: int) -> HttpResponse:
    case = _visible_case(request, case_id)
    if request.htmx:
        # A polling request reads the case as well: it is recorded like the page.
        case_record_view(case=case, viewer=request_user(request), via="poll")
        # Answer with the images fragment, and 286 once nothing is left to wait for so the
        # browser stops asking.
        context = case_detail_context(request, case)
        status = 200 if context["scoring_in_progress"] else HTMX_STOP_POLLING
        # A score that arrives may flag the case: the header's review state comes along as an
        # out-of-band swap, so the page never says "Not flagged" beside a high-risk score.
        content = render_to_string("casework/case_detail.html#images", context, request) + (
            render_to_string(
                "casework/case_detail.html#review_state", {**context, "out_of_band": True}, request
            )
        )
        response = HttpResponse(content, status=status)
        # Lets the history timeline refresh itself alongside the scores.
        return trigger_client_event(response, "case-updated")
    case_record_view(case=case, viewer=request_user(request))
    if user_can_review(request.user):
        # Opening a case that awaits a decision takes it (or renews the hold), so that the
        # queue shows it taken and "next" sends no other reviewer here meanwhile.
        case_claim(case=case, reviewer=request_user(request))
    return render(request, "casework/case_detail.html", case_detail_context(request, case))


@require_GET
def case_timeline_view(request: HttpRequest, case_id: int) -> HttpResponse:
    case = _visible_case(request, case_id)
    case_record_view(case=case, viewer=request_user(request), via="timeline")
    context = {"case": case, **case_timeline_context(case, image_labels(case_ids=[case.pk]))}
    return render(request, "casework/case_detail.html#timeline", context)


@require_POST
@role_required(user_can_upload)
def case_images_upload_view(request: HttpRequest, case_id: int) -> HttpResponse:
    case = _visible_case(request, case_id)
    form = ImageUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return case_page_refused(request, case, ["Choose one or more image files to upload."])
    try:
        images = case_images_upload(
            case=case, files=form.cleaned_data["images"], uploaded_by=request_user(request)
        )
    except ValidationError as exc:
        return case_page_refused(request, case, exc.messages)
    count = len(images)
    messages.success(
        request, f"{count} image{'s' if count != 1 else ''} uploaded; scoring started."
    )
    return redirect("cases:detail", case_id=case.pk)


@require_POST
@role_required(user_can_review)
def review_create_view(request: HttpRequest, case_id: int) -> HttpResponse:
    """Record the review form's decisions; "Save and next" then opens the queue's next case."""
    case = _visible_case(request, case_id)
    form = CaseReviewForm(
        request.POST,
        predictions=case_review_predictions(case=case),
        image_labels=image_labels(case_ids=[case.pk]).by_prediction,
    )
    if not form.is_valid():
        errors = [str(error) for error in form.non_field_errors()]
        for name, field_errors in form.errors.as_data().items():
            if name in form.fields:
                text = " ".join(message for error in field_errors for message in error.messages)
                errors.append(f"{form.fields[name].label}: {text}")
        return case_page_refused(request, case, errors, review_form=form)
    try:
        reviews = case_review_submit(
            case=case,
            reviewer=request_user(request),
            decisions=form.decisions(),
            note=form.cleaned_data["note"],
        )
    except ValidationError as exc:
        return case_page_refused(request, case, exc.messages, review_form=form)
    count = len(reviews)
    messages.success(request, "Review recorded." if count == 1 else f"{count} reviews recorded.")
    query = _queue_query(request)
    if request.POST.get("then") == "next":
        return redirect(query.next_url())
    return redirect(query.case_url(case.pk))


def case_page_refused(
    request: HttpRequest,
    case: Case,
    errors: list[str],
    review_form: CaseReviewForm | None = None,
) -> HttpResponse:
    """Answer a refused form of the case page with 400 and the page, its messages saying why."""
    for message in errors:
        messages.error(request, message)
    context = case_detail_context(request, case, review_form=review_form)
    return render(request, "casework/case_detail.html", context, status=400)


@require_GET
def image_file_view(request: HttpRequest, case_id: int, image_id: int) -> FileResponse:
    """Stream a stored image to someone allowed to see its case (files have no public URL)."""
    try:
        image = case_image_get(user=request_user(request), case_id=case_id, image_id=image_id)
    except (Case.DoesNotExist, Image.DoesNotExist) as exc:
        raise Http404("No such image.") from exc
    image_record_view(image=image, viewer=request_user(request))
    return image_file_response(image)


@require_GET
def heatmap_file_view(request: HttpRequest, case_id: int, prediction_id: int) -> FileResponse:
    """Stream a score's heatmap overlay to someone allowed to see its case, as its image."""
    try:
        prediction = prediction_heatmap_get(
            user=request_user(request), prediction_id=prediction_id, case_id=case_id
        )
    except Prediction.DoesNotExist as exc:
        raise Http404("No such heatmap.") from exc
    prediction_record_view(prediction=prediction, viewer=request_user(request), via="page-heatmap")
    return heatmap_file_response(prediction)
