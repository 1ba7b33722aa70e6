from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.accounts.models import User
from webapp.accounts.permissions import HasRole
from webapp.lib.api import error_responses
from webapp.scoring.models import Prediction
from webapp.scoring.selectors import prediction_get
from webapp.scoring.serializers import PredictionSerializer
from webapp.scoring.services import prediction_record_view


class PredictionDetailApi(generics.GenericAPIView):
    permission_classes = (IsAuthenticated, HasRole)
    serializer_class = PredictionSerializer
    queryset = Prediction.objects.none()  # for the schema; rows come from the selectors

    @extend_schema(
        description=(
            "A prediction's status and, once done, its result; poll until the status is done "
            "or failed."
        ),
        responses={200: PredictionSerializer, **error_responses(401, 404)},
    )
    def get(self, request: Request, prediction_id: int) -> Response:
        assert isinstance(request.user, User)
        prediction = prediction_get(user=request.user, prediction_id=prediction_id)
        prediction_record_view(prediction=prediction, viewer=request.user)
        return Response(
            PredictionSerializer(prediction, context=self.get_serializer_context()).data
        )
