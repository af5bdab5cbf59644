from django.urls import path
from rest_framework.routers import SimpleRouter

from jobs.api import views

router = SimpleRouter(trailing_slash=False)
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [
    path("upload", views.UploadView.as_view(), name="upload"),
    path("health/queue", views.QueueHealthView.as_view(), name="health-queue"),
    *router.urls,
]
