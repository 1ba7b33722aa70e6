from __future__ import annotations

from typing import Any

import django_filters
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
from webapp.cases.services import case_create, case_record_view, image_record_view
from webapp.casework.responses import heatmap_file_response, image_file_response
from webapp.casework.selectors import case_image_list
from webapp.casework.serializers import (
    CaseCreateSerializer,
    CaseDetailSerializer,
    ImageSerializer,
    ImageUploadSerializer,
)
from webapp.casework.services import case_images_upload
from webapp.lib.api import FileContentNegotiation, error_responses
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
            "queue each for scoring. Either every file is accepted or none is. The answer lists "
            "the new images; poll each one's prediction until its status is done or failed. "
            "The field's former name, `files`, is deprecated but still accepted."
        ),
        request={"multipart/form-data": ImageUploadSerializer},
        responses={201: ImageSerializer(many=True), **error_responses(400, 401, 403, 404, 413)},
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = case_get(user=request_user(request), case_id=case_id)
        payload = ImageUploadSerializer(
            data={name: request.FILES.getlist(name) for name in ("images", "files")}
        )
        payload.is_valid(raise_exception=True)
        images = case_images_upload(
            case=case, files=payload.validated_data["images"], uploaded_by=request_user(request)
        )
        fresh = case_image_list(case=case).filter(pk__in=[image.pk for image in images])
        data: Any = ImageSerializer(fresh, many=True, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


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
