"""Health endpoints for load balancers and orchestrators. Public, no auth, no throttling."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from pipeline_project.lib.errors import error_body
from pipeline_project.lib.redis import get_redis


@never_cache
@require_GET
def liveness(request):
    """The process is up and serving. Touches no dependency."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    get_redis().ping()


@never_cache
@require_GET
def readiness(request):
    """Ready to take traffic: the database and Redis answer. 503 names what failed."""
    checks = {}
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; say which and why
            checks[name] = f"unavailable: {type(exc).__name__}: {exc}"
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        body = error_body("service_unavailable", f"Not ready: {', '.join(failing)} unavailable.", {"checks": checks})
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "checks": checks})
