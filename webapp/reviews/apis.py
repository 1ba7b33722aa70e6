from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.accounts.permissions import HasRole
from webapp.accounts.roles import request_user, user_can_review
from webapp.audit.lists import AuditedListApi
from webapp.audit.models import AuditAction
from webapp.cases.models import Case
from webapp.cases.selectors import case_get
from webapp.cases.serializers import CaseSerializer
from webapp.lib.api import error_responses
from webapp.reviews.models import Decision, Review
from webapp.reviews.selectors import QueueFilter, QueueOrdering, queue_list, review_list
from webapp.reviews.serializers import (
    QueueQuerySerializer,
    ReviewCreateSerializer,
    ReviewSerializer,
)
from webapp.reviews.services import review_create
from webapp.scoring.selectors import prediction_get


class QueueApi(AuditedListApi):
    """Cases for review: flagged high-risk ones, highest probability first by default, and
    those with an image the model cannot judge."""

    audit_action = AuditAction.QUEUE_VIEWED
    permission_classes = (IsAuthenticated, HasRole)
    role_checks = {"*": user_can_review}
    serializer_class = CaseSerializer
    # The selector does the filtering and ordering; the generic backends would fight it.
    filter_backends = ()

    def get_queryset(self) -> QuerySet[Case]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no request
            return Case.objects.none()
        query = QueueQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        return queue_list(
            state=QueueFilter(params["state"]),
            ordering=QueueOrdering(params["ordering"]),
            flagged_from=params.get("flagged_from"),
            flagged_to=params.get("flagged_to"),
        )

    @extend_schema(
        description=(
            "Cases for review (reviewers and admins): by default those flagged high risk and "
            "awaiting review, highest probability first. `state=needs_image` lists the cases "
            "with an image the model cannot judge (its score's `gate_reason` says why), which "
            "wait for a reviewer's decision and have no probability to rank by; `state=all` "
            "lists every case in the queue, reviewed ones included."
        ),
        parameters=[QueueQuerySerializer],
        responses={200: CaseSerializer(many=True), **error_responses(400, 401, 403, 404)},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class ReviewFilter(django_filters.FilterSet):
    case = django_filters.NumberFilter(field_name="case_id")
    decision = django_filters.ChoiceFilter(choices=Decision.choices)
    standing = django_filters.BooleanFilter(
        field_name="superseded_at",
        lookup_expr="isnull",
        label="true: only the reviews that stand; false: only those superseded.",
    )

    class Meta:
        model = Review
        fields = ("case", "decision", "standing")


@extend_schema_view(
    get=extend_schema(
        description=(
            "Reviews of the cases you may see, newest first, superseded ones included: "
            "`standing=true` lists only the decisions that count."
        ),
        responses={200: ReviewSerializer(many=True), **error_responses(400, 401, 404)},
    )
)
class ReviewListCreateApi(AuditedListApi):
    """Reviews of the cases the user may see; reviewers and admins record new ones."""

    audit_action = AuditAction.REVIEW_LIST_VIEWED
    permission_classes = (IsAuthenticated, HasRole)
    role_checks = {"POST": user_can_review}
    serializer_class = ReviewSerializer
    filterset_class = ReviewFilter
    ordering_fields = ("created_at",)
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> QuerySet[Review]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Review.objects.none()
        return review_list(user=request_user(self.request))

    def audit_case_ids(self, rows: list[Any]) -> list[int]:
        return [review.case_id for review in rows]

    def audit_data(self, rows: list[Any]) -> dict[str, Any]:
        return {"review_ids": [review.pk for review in rows]}

    @extend_schema(
        description=(
            "Record a decision on one score of a case (reviewers and admins). It supersedes "
            "the score's standing review, if any, which stays in the history with `standing` "
            "false. The case leaves the queue of unreviewed cases once each flagged score has "
            "a standing review, and the needs-a-better-image bucket once each score of an "
            "image the model cannot judge has one; recording it releases the reviewer's "
            "claim on the case."
        ),
        request=ReviewCreateSerializer,
        responses={201: ReviewSerializer, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request: Request) -> Response:
        payload = ReviewCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        user = request_user(request)
        review = review_create(
            case=case_get(user=user, case_id=data["case"]),
            prediction=prediction_get(user=user, prediction_id=data["prediction"]),
            reviewer=user,
            decision=Decision(data["decision"]),
            note=data["note"],
        )
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)
