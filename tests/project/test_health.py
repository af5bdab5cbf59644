def test_liveness_touches_nothing(client):
    response = client.get("/health")  # no `db` fixture: any database access would raise
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readiness_checks_database_and_redis(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


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
