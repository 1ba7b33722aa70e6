from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from webapp.accounts.decorators import role_required
from webapp.accounts.roles import request_user, user_can_review, user_can_upload
from webapp.audit.models import AuditAction, AuditEvent
from webapp.audit.selectors import TIMELINE_LENGTH, VIEW_ACTIONS, audit_timeline
from webapp.audit.services import audit_record_list_view
from webapp.cases.models import Case, Image
from webapp.cases.selectors import ImageLabels, case_get, case_image_get, image_labels
from webapp.cases.services import (
    case_create,
    case_editable_by,
    case_record_view,
    case_update,
    image_record_view,
    image_thumbnail_ensure,
    image_withdraw,
)
from webapp.casework.forms import (
    CaseForm,
    CaseSearchForm,
    CompareForm,
    ImageUploadForm,
    ImageWithdrawForm,
)
from webapp.casework.responses import (
    heatmap_file_response,
    image_file_response,
    thumbnail_file_response,
)
from webapp.casework.selectors import (
    case_image_list,
    case_overview_list,
    case_scoring_in_progress,
)
from webapp.casework.services import case_images_upload
from webapp.lib.htmx import HTMX_STOP_POLLING, HtmxHttpRequest
from webapp.reviews.forms import CaseReviewForm
from webapp.reviews.models import Decision
from webapp.reviews.queries import CASE_PAGE_PARAMETER, QueueQuery
from webapp.reviews.selectors import (
    case_claim_get,
    case_review_predictions,
    case_undecided_count,
    review_list,
)
from webapp.reviews.services import case_claim, case_review_submit
from webapp.scoring.models import Prediction, PredictionStatus
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
    search = CaseSearchForm(request.GET)
    if not search.is_valid():
        # A refused search shows the form with its error and no rows, as a 400.
        context: dict[str, object] = {"search": search, "page": None, "query": ""}
        return render(request, "casework/case_list.html", context, status=400)
    term = search.cleaned_data["q"]
    cases = case_overview_list(user=request_user(request), search=term)
    page = Paginator(cases, 20).get_page(request.GET.get("page"))
    audit_record_list_view(
        action=AuditAction.CASE_LIST_VIEWED,
        viewer=request_user(request),
        via="page",
        case_ids=[case.pk for case in page],
        data={"search": term} if term else None,
    )
    context = {
        "search": search,
        "page": page,
        "rows": [(case, _decision_label(case)) for case in page],
        "query": urlencode({"q": term}) if term else "",
    }
    return render(request, "casework/case_list.html", context)


def _decision_label(case: Any) -> str:
    """The latest review's decision, as the page names it (case_overview_list reads it)."""
    return Decision(case.latest_decision).label if case.latest_decision else ""


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


def _event_label(event: AuditEvent, labels: ImageLabels) -> str | None:
    data = event.data if isinstance(event.data, dict) else {}
    image_id, prediction_id = data.get("image_id"), data.get("prediction_id")
    if isinstance(image_id, int):
        return labels.by_image.get(image_id)
    if isinstance(prediction_id, int):
        return labels.by_prediction.get(prediction_id)
    return None


def case_timeline_context(case: Case, labels: ImageLabels) -> dict[str, object]:
    """The history timeline: recent entries (runs of views folded into one), each with the
    labels of the images it concerns, oldest first."""
    timeline = audit_timeline(case=case)
    entries = []
    for entry in timeline.entries:
        entry_labels = (_event_label(event, labels) for event in reversed(entry.events))
        entries.append((entry, ", ".join(dict.fromkeys(label for label in entry_labels if label))))
    return {
        "timeline": timeline.entries,
        "timeline_entries": entries,
        "timeline_truncated": timeline.truncated,
        "timeline_length": TIMELINE_LENGTH,
        "view_actions": [str(action) for action in VIEW_ACTIONS],
    }


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
        "can_edit": case_editable_by(case=case, user=request_user(request)),
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
        stored = case_images_upload(
            case=case, files=form.cleaned_data["images"], uploaded_by=request_user(request)
        )
    except ValidationError as exc:
        return case_page_refused(request, case, exc.messages)
    count = len(stored.images)
    if count:
        messages.success(
            request, f"{count} image{'s' if count != 1 else ''} uploaded; scoring started."
        )
    if stored.duplicates:
        labels = image_labels(case_ids=[case.pk]).by_image
        for duplicate in stored.duplicates:
            existing = labels.get(duplicate.existing.pk, f"image {duplicate.existing.pk}")
            messages.warning(
                request,
                f"{duplicate.filename} is already stored in this case as {existing}; "
                "it was not stored again.",
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
        # The review panel shows the form's errors beside its fields: a banner would repeat them.
        return case_page_refused(request, case, [], review_form=form)
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
    recorded = "Review recorded." if count == 1 else f"{count} reviews recorded."
    # "Save and next" leads back to this case while an image of it awaits a decision (it still
    # heads the queue): say so, or the reviewer sees the same page and thinks nothing happened.
    undecided = case_undecided_count(case=case)
    if undecided:
        waiting = (
            "image of this case still needs" if undecided == 1 else "images of this case still need"
        )
        recorded = f"{recorded} {undecided} {waiting} a decision."
    messages.success(request, recorded)
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
def image_thumbnail_view(request: HttpRequest, case_id: int, image_id: int) -> FileResponse:
    """Stream an image's thumbnail, making it first for an image stored before thumbnails.

    Not recorded as a view of the image: thumbnails are what the case page and the viewer
    show of every image at once, and those pages record that the case was read.
    """
    try:
        image = case_image_get(user=request_user(request), case_id=case_id, image_id=image_id)
    except (Case.DoesNotExist, Image.DoesNotExist) as exc:
        raise Http404("No such image.") from exc
    return thumbnail_file_response(image_thumbnail_ensure(image=image))


@require_GET
def image_viewer_view(request: HttpRequest, case_id: int, image_id: int) -> HttpResponse:
    """One image large, to zoom and pan, beside another image of the same lesion."""
    case = _visible_case(request, case_id)
    compare_form = CompareForm(request.GET)
    compare_id = compare_form.cleaned_data["compare"] if compare_form.is_valid() else None
    context = image_viewer_context(request, case, image_id, compare_id=compare_id)
    error = None
    if not compare_form.is_valid():
        error = "Choose one of this case's images to compare."
    elif compare_id is not None and context["compared"] is None:
        error = f"This case has no other image {compare_id} to compare."
    image_record_view(image=context["image"], viewer=request_user(request), via="viewer")
    if error:
        # Shown with the comparison it would show without the bad choice, as a 400.
        messages.error(request, error)
        context = image_viewer_context(request, case, image_id, compare_id=None)
        return render(request, "casework/image_viewer.html", context, status=400)
    return render(request, "casework/image_viewer.html", context)


def image_viewer_context(
    request: HttpRequest, case: Case, image_id: int, *, compare_id: int | None
) -> dict[str, Any]:
    """The viewer page: the image, the image compared with it, the strip to choose another.

    Without `compare_id` the image just before this one is compared, the lesion as it last
    looked; an id that is not another image of the case compares nothing.
    """
    images = list(case_image_list(case=case))
    position = next((n for n, image in enumerate(images) if image.pk == image_id), None)
    if position is None:
        raise Http404("No such image.")
    image = images[position]
    others = [other for other in images if other.pk != image.pk]
    if compare_id is None:
        compared = images[position - 1] if position > 0 else None
    else:
        compared = next((other for other in others if other.pk == compare_id), None)
    labels = image_labels(case_ids=[case.pk]).by_image
    prediction = _latest_prediction(image)
    return {
        "case": case,
        "image": image,
        "label": labels.get(image.pk, image.original_filename),
        "prediction": prediction,
        # What drove a score the input gate set aside, or a score of a withdrawn image, is no
        # reading of the lesion: no heatmap is offered for either.
        "has_heatmap": bool(
            prediction
            and prediction.status == PredictionStatus.DONE
            and prediction.heatmap
            and not prediction.gate_reason
            and not image.withdrawn
        ),
        "compared": compared,
        "compared_label": labels.get(compared.pk, "") if compared else "",
        "compared_prediction": _latest_prediction(compared) if compared else None,
        "strip": [(other, labels.get(other.pk, ""), _latest_prediction(other)) for other in others],
        "previous_image": images[position - 1] if position > 0 else None,
        "next_image": images[position + 1] if position + 1 < len(images) else None,
        "can_edit": case_editable_by(case=case, user=request_user(request)),
        "withdraw_form": ImageWithdrawForm(),
    }


def _latest_prediction(image: Image) -> Prediction | None:
    # The images come with their predictions, newest first (case_image_list).
    predictions = list(image.predictions.all())
    return predictions[0] if predictions else None


@require_http_methods(["GET", "POST"])
@role_required(user_can_upload)
def case_edit_view(request: HttpRequest, case_id: int) -> HttpResponse:
    case = _visible_case(request, case_id)
    user = request_user(request)
    if not case_editable_by(case=case, user=user):
        raise PermissionDenied("Only the case's creator or an admin edits it.")
    form = CaseForm(request.POST or None, instance=case)
    if request.method == "POST" and form.is_valid():
        case_update(case=case, updated_by=user, **form.cleaned_data)
        messages.success(request, "Case updated.")
        return redirect("cases:detail", case_id=case.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "casework/case_edit.html", {"case": case, "form": form}, status=status)


@require_POST
@role_required(user_can_upload)
def image_withdraw_view(request: HttpRequest, case_id: int, image_id: int) -> HttpResponse:
    case = _visible_case(request, case_id)
    user = request_user(request)
    if not case_editable_by(case=case, user=user):
        raise PermissionDenied("Only the case's creator or an admin withdraws its images.")
    context = image_viewer_context(request, case, image_id, compare_id=None)
    form = ImageWithdrawForm(request.POST)
    errors: list[str] = []
    if form.is_valid():
        try:
            image_withdraw(
                image=context["image"], withdrawn_by=user, reason=form.cleaned_data["reason"]
            )
        except ValidationError as exc:
            errors = exc.messages
        else:
            messages.success(
                request, "Image withdrawn: it is kept, but no longer scored or queued."
            )
            return redirect("cases:detail", case_id=case.pk)
    # A refused withdrawal is the viewer again, its form saying why, as a 400.
    for message in errors:
        messages.error(request, f"The image was not withdrawn: {message}")
    context["withdraw_form"] = form
    return render(request, "casework/image_viewer.html", context, status=400)


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
