from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.accounts.permissions import HasRole
from webapp.accounts.roles import request_user, user_can_upload
from webapp.audit.lists import AuditedListApi
from webapp.audit.models import AuditAction
from webapp.cases.models import BodySite, Case, Image, ReviewState
from webapp.cases.selectors import case_get, case_image_get, case_list
from webapp.cases.serializers import CaseSerializer
from webapp.cases.services import (
    case_create,
    case_record_view,
    case_update,
    image_record_view,
    image_withdraw,
)
from webapp.casework.responses import heatmap_file_response, image_file_response
from webapp.casework.selectors import case_image_list
from webapp.casework.serializers import (
    CaseCreateSerializer,
    CaseDetailSerializer,
    CaseUpdateSerializer,
    ImageSerializer,
    ImageUploadSerializer,
    ImageWithdrawSerializer,
    UploadedImageSerializer,
)
from webapp.casework.services import case_images_upload
from webapp.lib.api import Conflict, FileContentNegotiation, error_responses
from webapp.lib.filters import UtcIsoDateTimeFilter
from webapp.scoring.models import Prediction
from webapp.scoring.selectors import prediction_heatmap_get
from webapp.scoring.services import prediction_record_view


class CaseFilter(django_filters.FilterSet):
    body_site = django_filters.ChoiceFilter(choices=BodySite.choices)
    review_state = django_filters.ChoiceFilter(choices=ReviewState.choices)
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Case
        fields = ("body_site", "review_state", "created_after", "created_before")


@extend_schema_view(
    get=extend_schema(
        description=(
            "The cases you may see, newest first: clinicians see their own, reviewers and "
            "admins every case."
        ),
        responses={200: CaseSerializer(many=True), **error_responses(400, 401, 404)},
    )
)
class CaseListCreateApi(AuditedListApi):
    """List the cases the user may see, or open a new one."""

    audit_action = AuditAction.CASE_LIST_VIEWED
    permission_classes = (IsAuthenticated, HasRole)
    role_checks = {"POST": user_can_upload}
    serializer_class = CaseSerializer
    filterset_class = CaseFilter
    ordering_fields = ("created_at", "top_probability", "flagged_at")
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> QuerySet[Case]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Case.objects.none()
        return case_list(user=request_user(self.request))

    @extend_schema(
        description="Open a case for one lesion (clinicians and admins); add images next.",
        request=CaseCreateSerializer,
        responses={201: CaseSerializer, **error_responses(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        payload = CaseCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        case = case_create(created_by=request_user(request), **payload.validated_data)
        return Response(CaseSerializer(case).data, status=status.HTTP_201_CREATED)


class CaseDetailApi(generics.GenericAPIView):
    permission_classes = (IsAuthenticated, HasRole)
    role_checks = {"PATCH": user_can_upload}
    queryset = Case.objects.none()  # for the schema; rows come from the selectors
    serializer_class = CaseDetailSerializer

    @extend_schema(
        description="A case with its images and each image's latest score.",
        responses={200: CaseDetailSerializer, **error_responses(401, 404)},
    )
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get(user=request_user(request), case_id=case_id)
        case_record_view(case=case, viewer=request_user(request), via="api")
        context = {**self.get_serializer_context(), "images": case_image_list(case=case)}
        return Response(CaseDetailSerializer(case, context=context).data)

    @extend_schema(
        description=(
            "Edit a case's subject reference, body site or notes (its creator, or an admin); "
            "fields left out keep their value. The history records each change, before and "
            "after."
        ),
        request=CaseUpdateSerializer,
        responses={200: CaseDetailSerializer, **error_responses(400, 401, 403, 404)},
    )
    def patch(self, request: Request, case_id: int) -> Response:
        user = request_user(request)
        case = case_get(user=user, case_id=case_id)
        payload = CaseUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        current = {
            "subject_ref": case.subject_ref,
            "body_site": case.body_site,
            "notes": case.notes,
        }
        case = case_update(case=case, updated_by=user, **{**current, **payload.validated_data})
        context = {**self.get_serializer_context(), "images": case_image_list(case=case)}
        return Response(CaseDetailSerializer(case, context=context).data)


class CaseImagesApi(generics.GenericAPIView):
    permission_classes = (IsAuthenticated, HasRole)
    role_checks = {"POST": user_can_upload}
    parser_classes = (MultiPartParser, FormParser)
    queryset = Image.objects.none()  # for the schema; rows come from the selectors
    serializer_class = ImageSerializer
    # Images come in upload order; there is nothing to filter or sort them by.
    filter_backends = ()

    @extend_schema(
        description="The images of a case in upload order, each with its latest score.",
        responses={200: ImageSerializer(many=True), **error_responses(401, 404)},
    )
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get(user=request_user(request), case_id=case_id)
        case_record_view(case=case, viewer=request_user(request), via="api-images")
        page = self.paginate_queryset(case_image_list(case=case))
        data = ImageSerializer(page, many=True, context={"request": request}).data
        return self.get_paginated_response(data)

    @extend_schema(
        description=(
            "Upload one or more images (multipart field `images`; JPEG, PNG or WebP) and "
            "queue each for scoring. Either every file is accepted or none is. A file whose "
            "bytes this case already holds (in an image not withdrawn) is not stored again: "
            "the answer (201) has one entry per file, in order, each new image with "
            "`duplicate` false and, for a duplicate, the image already holding it with "
            "`duplicate` true. When every file is a duplicate nothing is stored and the answer "
            "is 409, its details naming each file and the image that holds it. Poll each new "
            "image's prediction until its status is done or failed. The field's former name, "
            "`files`, is deprecated but still accepted."
        ),
        request={"multipart/form-data": ImageUploadSerializer},
        responses={
            201: UploadedImageSerializer(many=True),
            **error_responses(400, 401, 403, 404, 409, 413),
        },
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = case_get(user=request_user(request), case_id=case_id)
        payload = ImageUploadSerializer(
            data={name: request.FILES.getlist(name) for name in ("images", "files")}
        )
        payload.is_valid(raise_exception=True)
        stored = case_images_upload(
            case=case, files=payload.validated_data["images"], uploaded_by=request_user(request)
        )
        if not stored.images:
            held = ", ".join(
                f"{duplicate.filename} (image {duplicate.existing.pk})"
                for duplicate in stored.duplicates
            )
            raise Conflict(
                f"Nothing was stored: every file is already stored in this case: {held}.",
                code="duplicate_images",
            )
        rows = {
            image.pk: image
            for image in case_image_list(case=case).filter(
                pk__in=[image.pk for image, _ in stored.in_order]
            )
        }
        context = {"request": request}
        data: Any = [
            UploadedImageSerializer(
                rows[image.pk], context={**context, "duplicate": duplicate}
            ).data
            for image, duplicate in stored.in_order
        ]
        return Response(data, status=status.HTTP_201_CREATED)


class ImageWithdrawalApi(generics.GenericAPIView):
    permission_classes = (IsAuthenticated, HasRole)
    role_checks = {"POST": user_can_upload}
    queryset = Image.objects.none()  # for the schema; rows come from the selectors
    serializer_class = ImageSerializer

    @extend_schema(
        description=(
            "Withdraw an image (its case's creator, or an admin), saying why. The image is "
            "kept, with its scores and reviews, and marked `withdrawn`; it is no longer scored "
            "and no longer counts toward the review queue. 409 if it is already withdrawn."
        ),
        request=ImageWithdrawSerializer,
        responses={200: ImageSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, case_id: int, image_id: int) -> Response:
        user = request_user(request)
        image = case_image_get(user=user, case_id=case_id, image_id=image_id)
        payload = ImageWithdrawSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            image_withdraw(image=image, withdrawn_by=user, reason=payload.validated_data["reason"])
        except ValidationError as exc:
            if exc.code == "already_withdrawn":
                raise Conflict(" ".join(exc.messages), code="already_withdrawn") from exc
            raise
        fresh = case_image_list(case=image.case).get(pk=image.pk)
        return Response(ImageSerializer(fresh, context={"request": request}).data)


class StoredFileApi(generics.GenericAPIView):
    """Streams a stored file under the API's authentication and role rules; errors answer in
    JSON, the file as itself."""

    permission_classes = (IsAuthenticated, HasRole)
    renderer_classes = (JSONRenderer,)
    content_negotiation_class = FileContentNegotiation


class ImageFileApi(StoredFileApi):
    """Stream a stored image to an API client allowed to see its case: the `file_url`.

    The page's own image view (cases:image-file) takes only the browser's session; this one
    authenticates as the rest of the API does, under the same role and visibility rules.
    """

    queryset = Image.objects.none()  # for the schema; rows come from the selectors

    @extend_schema(
        description=(
            "The image file (the `file_url` of an image): the stored JPEG or PNG, re-encoded "
            "without metadata at upload."
        ),
        responses={
            (200, "image/jpeg"): OpenApiTypes.BINARY,
            (200, "image/png"): OpenApiTypes.BINARY,
            **error_responses(401, 404),
        },
    )
    def get(self, request: Request, case_id: int, image_id: int) -> FileResponse:
        image = case_image_get(user=request_user(request), case_id=case_id, image_id=image_id)
        image_record_view(image=image, viewer=request_user(request))
        return image_file_response(image)


class PredictionHeatmapApi(StoredFileApi):
    """Stream a score's heatmap overlay to an API client allowed to see its case: the
    `heatmap_url`, under the same role and visibility rules as the image's `file_url`."""

    queryset = Prediction.objects.none()  # for the schema; rows come from the selectors

    @extend_schema(
        description=(
            "The heatmap of a score (its `heatmap_url`): an RGBA PNG at most 256 pixels on its "
            "longer side with the image's aspect ratio, coloured and opaque where a part of "
            "the image moved the score most (either way), transparent where it did not. Draw "
            "it stretched over the image. 404 for a score without one (not done yet)."
        ),
        responses={(200, "image/png"): OpenApiTypes.BINARY, **error_responses(401, 404)},
    )
    def get(self, request: Request, prediction_id: int) -> FileResponse:
        user = request_user(request)
        prediction = prediction_heatmap_get(user=user, prediction_id=prediction_id)
        prediction_record_view(prediction=prediction, viewer=user, via="api-heatmap")
        return heatmap_file_response(prediction)
