"""The API's routes, under ``/api/v1/``: one router for every app's viewsets (a new app
registers its own here), then the views that are not viewsets."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api import views as accounts
from audit.api import views as audit
from jobs.api import views as jobs
from pipelines.api import views as pipelines
from webhooks.api import views as webhooks

router = SimpleRouter(trailing_slash=False)
router.register("auth/api-keys", accounts.ApiKeyViewSet, basename="api-key")
router.register("pipelines", pipelines.PipelineViewSet, basename="pipeline")
router.register("jobs", jobs.JobViewSet, basename="job")
router.register("webhooks", webhooks.WebhookViewSet, basename="webhook")
router.register("audit/logs", audit.AuditLogViewSet, basename="audit-log")

urlpatterns = [
    path("auth/login", accounts.LoginView.as_view(), name="auth-login"),
    path("auth/refresh", accounts.RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", accounts.LogoutView.as_view(), name="auth-logout"),
    path("auth/me", accounts.MeView.as_view(), name="auth-me"),
    path("upload", jobs.UploadView.as_view(), name="upload"),
    path("health/queue", jobs.QueueHealthView.as_view(), name="health-queue"),
    path("webhooks/default/secret", webhooks.DefaultSecretView.as_view(), name="webhook-default-secret"),
    path("webhooks/default/secret/rotate", webhooks.DefaultSecretRotateView.as_view(), name="webhook-default-rotate"),
    *router.urls,
]
