from django.contrib import admin
from django.urls import include, path
from django_rq import urls as django_rq_urls
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts import admin_login
from pipeline_project import dashboard, health, metrics
from pipeline_project.lib.admin import superusers_only
from pipeline_project.lib.renderers import FormatParameterNegotiation

admin.site.site_header = "Document pipeline back-office"
admin.site.site_title = "Document pipeline"
admin.site.index_title = "Back office"

# django-rq's queue pages, for superusers only (their actions go around our services and audit
# trail), and its stats.json and metrics endpoints (staff, or RQ_API_TOKEN).
django_rq_pages = [
    *django_rq_urls.get_admin_urlpatterns(view_wrapper=superusers_only),
    *django_rq_urls.get_api_urlpatterns(),
]

urlpatterns = [
    path("health", health.liveness, name="health"),
    path("health/ready", health.readiness, name="health-ready"),
    path("metrics", metrics.metrics_view, name="metrics"),  # Prometheus (pipeline_project/metrics.py)
    path("api/v1/", include("pipeline_project.api_urls")),
    path(
        "api/schema/", SpectacularAPIView.as_view(content_negotiation_class=FormatParameterNegotiation), name="schema"
    ),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("admin/login/", admin_login.login),  # throttled like the API login (accounts/admin_login.py)
    path("admin/dashboard/", admin.site.admin_view(dashboard.dashboard_view), name="admin-dashboard"),
    path("admin/rq/", include((django_rq_pages, "django_rq"))),
    path("admin/", admin.site.urls),
]

handler400 = "pipeline_project.lib.errors.bad_request"
handler403 = "pipeline_project.lib.errors.permission_denied"
handler404 = "pipeline_project.lib.errors.page_not_found"
handler500 = "pipeline_project.lib.errors.server_error"
