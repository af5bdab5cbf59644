def test_liveness_touches_nothing(client):
    response = client.get("/health")  # no `db` fixture: any database access would raise
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readiness_checks_database_and_redis_and_is_degraded_with_no_worker_alive(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "redis": "ok", "workers": "none alive: queued jobs wait"},
        "workers": 0,
        "oldest_queued_seconds": None,
    }


def test_readiness_reports_workers_alive_and_the_oldest_queued_job(client, as_owner):
    from datetime import timedelta

    from django.utils import timezone
    from rq import Queue, Worker

    from jobs.models import Job
    from pipeline_project.lib.redis import get_redis

    job = as_owner.post("/api/v1/jobs", {"source_type": "text", "text": "waits"}, format="json").json()
    Job.objects.filter(pk=job["id"]).update(created_at=timezone.now() - timedelta(minutes=5))
    worker = Worker([Queue("default", connection=get_redis())], connection=get_redis())
    worker.register_birth()
    try:
        body = client.get("/health/ready").json()
    finally:
        worker.register_death()
    assert (body["status"], body["workers"], body["checks"]["workers"]) == ("ok", 1, "ok")
    assert 300 <= body["oldest_queued_seconds"] < 360


def test_readiness_is_503_naming_redis_when_redis_is_unreachable(client, db, settings, unused_tcp_port):
    settings.REDIS_URL = f"redis://127.0.0.1:{unused_tcp_port}/0"
    response = client.get("/health/ready")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "service_unavailable" and error["message"] == "Not ready: redis unavailable."
    assert error["details"]["checks"]["database"] == "ok"
    assert error["details"]["checks"]["redis"].startswith("unavailable: ConnectionError")


def test_health_is_public_and_get_only(client, db):
    assert client.post("/health").status_code == 405
