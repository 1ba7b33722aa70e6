from django.urls import path

from webapp.reviews import views

app_name = "reviews"

urlpatterns = [
    path("queue/", views.queue_view, name="queue"),
    path("queue/next/", views.queue_next_view, name="next"),
]
