from django.urls import path

from webapp.reviews import views

app_name = "reviews"

urlpatterns = [
    path("queue/", views.queue_view, name="queue"),
    path("cases/<int:case_id>/reviews/", views.review_create_view, name="create"),
]
