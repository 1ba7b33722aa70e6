from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from webapp.accounts.apis import TokenApi
from webapp.casework import views as casework_views
from webapp.casework.apis import (
    CaseDetailApi,
    CaseImagesApi,
    CaseListCreateApi,
    ImageFileApi,
    ImageWithdrawalApi,
    PredictionHeatmapApi,
)
from webapp.health.views import health_view
from webapp.reviews.apis import QueueApi, ReviewListCreateApi
from webapp.scoring.apis import PredictionDetailApi

api_v1 = [
    path("auth/token/", TokenApi.as_view(), name="token"),
    path("cases/", CaseListCreateApi.as_view(), name="case-list"),
    path("cases/<int:case_id>/", CaseDetailApi.as_view(), name="case-detail"),
    path("cases/<int:case_id>/images/", CaseImagesApi.as_view(), name="case-images"),
    path(
        "cases/<int:case_id>/images/<int:image_id>/file/",
        ImageFileApi.as_view(),
        name="image-file",
    ),
    path(
        "cases/<int:case_id>/images/<int:image_id>/withdrawal/",
        ImageWithdrawalApi.as_view(),
        name="image-withdrawal",
    ),
    path(
        "predictions/<int:prediction_id>/", PredictionDetailApi.as_view(), name="prediction-detail"
    ),
    path(
        "predictions/<int:prediction_id>/heatmap/",
        PredictionHeatmapApi.as_view(),
        name="prediction-heatmap",
    ),
    path("queue/", QueueApi.as_view(), name="queue"),
    path("reviews/", ReviewListCreateApi.as_view(), name="review-list"),
]

urlpatterns = [
    path("", casework_views.home, name="home"),
    path("accounts/", include("webapp.accounts.urls")),
    path("cases/", include("webapp.casework.urls")),
    path("", include("webapp.reviews.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file of its own, which the CSP allows.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("health/", health_view, name="health"),
]

handler400 = "webapp.lib.views.bad_request_view"
handler403 = "webapp.config.errors.permission_denied_view"
handler404 = "webapp.config.errors.not_found_view"
handler500 = "webapp.lib.views.server_error_view"
