from django.urls import path

from webapp.reviews import views

app_name = "reviews"

urlpatterns = [
    path("queue/", views.queue_view, name="queue"),
]
