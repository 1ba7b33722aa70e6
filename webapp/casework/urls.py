from django.urls import path

from webapp.casework import views

# The pages of cases (cases:list, cases:detail, ...), whichever app draws them.
app_name = "cases"

urlpatterns = [
    path("", views.case_list_view, name="list"),
    path("new/", views.case_create_view, name="create"),
    path("<int:case_id>/", views.case_detail_view, name="detail"),
    path("<int:case_id>/edit/", views.case_edit_view, name="edit"),
    path("<int:case_id>/timeline/", views.case_timeline_view, name="timeline"),
    path("<int:case_id>/images/", views.case_images_upload_view, name="upload"),
    path("<int:case_id>/images/<int:image_id>/file/", views.image_file_view, name="image-file"),
    path(
        "<int:case_id>/images/<int:image_id>/thumbnail/",
        views.image_thumbnail_view,
        name="image-thumbnail",
    ),
    path("<int:case_id>/images/<int:image_id>/view/", views.image_viewer_view, name="image-viewer"),
    path(
        "<int:case_id>/images/<int:image_id>/withdraw/",
        views.image_withdraw_view,
        name="image-withdraw",
    ),
    path(
        "<int:case_id>/predictions/<int:prediction_id>/heatmap/",
        views.heatmap_file_view,
        name="heatmap-file",
    ),
    path("<int:case_id>/reviews/", views.review_create_view, name="review"),
]
