"""Health endpoints for load balancers and orchestrators. Public, no auth, no throttling."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from rq import Worker

from jobs.selectors import oldest_queued_age
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
    """Ready to take traffic: the database and Redis answer (503 names what failed). Also how
    many workers are alive and how long the oldest queued job has waited: with no worker alive
    the service is ``degraded`` (still 200: it accepts work, which waits)."""
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
    workers = Worker.count(connection=get_redis())
    checks["workers"] = "ok" if workers else "none alive: queued jobs wait"
    age = oldest_queued_age()
    return JsonResponse(
        {
            "status": "ok" if workers else "degraded",
            "checks": checks,
            "workers": workers,
            "oldest_queued_seconds": None if age is None else round(age, 1),
        }
    )
