"""Every /api/ request recorded (whatever its answer), redacted before storage, with the right
actor; staff and system actions in the same trail; an audit failure never fails the request."""

import json

import pytest
from django.db import connection
from rest_framework_simplejwt.tokens import RefreshToken
from rq import Queue, SimpleWorker

from accounts.principal import Principal
from accounts.roles import ROLE_PERMISSIONS, Role
from audit import chain
from audit.models import ActorKind, AuditLog
from audit.services import QUEUED, WRITER_DUE, audit_write_queued
from jobs import services as job_services
from jobs.models import Job, JobStatus
from pipeline_project.lib.redis import get_redis
from tests.concurrency import in_threads
from tests.conftest import key_client
from tests.webhooks.receiver import Receiver, Response
from webhooks import signing
from webhooks.delivery import deliver
from webhooks.models import WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = "/api/v1/jobs"
TEXT = {"source_type": "text", "text": "Hello"}


def last(**filters) -> AuditLog:
    return AuditLog.objects.filter(**filters).order_by("timestamp", "seq").last()


def test_a_created_job_is_recorded_with_its_key_its_id_and_a_request_id(owner_key, org, owner):
    response = key_client(owner_key.raw_key).post(JOBS, TEXT, format="json", HTTP_USER_AGENT="curl/8.0")
    assert response.status_code == 201
    record = last(action="jobs.create")
    assert (record.actor_kind, record.api_key_id, record.user_id, record.username) == (
        ActorKind.API_KEY, owner_key.pk, owner.pk, owner.username)  # fmt: skip
    assert (record.organization_id, record.resource_type, record.resource_id) == (org.pk, "job", response.json()["id"])
    assert (record.method, record.path, record.status_code, record.success) == ("POST", JOBS, 201, True)
    assert record.request_id == response["X-Request-ID"] and len(record.request_id) == 32
    assert record.ip_address == "127.0.0.1" and record.user_agent == "curl/8.0" and record.duration_ms is not None
    assert record.request_details == {"body": {"json": TEXT}}


def test_a_well_formed_request_id_is_kept_and_another_replaced(as_owner):
    assert as_owner.get(JOBS, HTTP_X_REQUEST_ID="trace-42.a:b")["X-Request-ID"] == "trace-42.a:b"
    assert last(action="jobs.list").request_id == "trace-42.a:b"
    replaced = as_owner.get(JOBS, HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert replaced != "bad id with spaces" and last(action="jobs.list").request_id == replaced


@pytest.mark.parametrize(
    "call, action, status",
    [
        (lambda c, other: c.post(JOBS, {"source_type": "text"}, format="json"), "jobs.create", 400),
        (
            lambda c, other: c.post("/api/v1/pipelines", {"name": "x", "config": {}}, format="json"),
            "pipelines.create",
            403,
        ),  # fmt: skip
        (lambda c, other: c.get(f"{JOBS}/{other.pk}"), "jobs.retrieve", 404),
        (lambda c, other: c.post(f"{JOBS}/{other.pk}/cancel", {}, format="json"), "jobs.cancel", 404),
    ],
)
def test_refusals_are_recorded_with_the_caller(as_member, member, org, other_org, outsider, call, action, status):
    principal = Principal(user=outsider, organization=other_org, role=Role.ADMIN,
                          permissions=ROLE_PERMISSIONS[Role.ADMIN])  # fmt: skip
    others_job, _ = job_services.job_create(principal=principal, source_type="text", text="theirs", priority=2)
    assert call(as_member, others_job).status_code == status
    record = last(action=action)
    assert (record.status_code, record.success, record.actor_kind, record.user_id) == (
        status, False, ActorKind.USER, member.pk)  # fmt: skip
    assert record.organization_id == org.pk and record.error_message
    if status == 404:
        assert record.resource_id == str(others_job.pk)


def test_401_and_429_are_recorded(anon, as_owner, settings):
    assert anon.get(JOBS).status_code == 401
    record = last(action="jobs.list")
    assert (record.actor_kind, record.organization_id, record.status_code, record.chain) == (
        ActorKind.ANONYMOUS, None, 401, "-")  # fmt: skip
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "principal": "1/hour"}}
    as_owner.get(JOBS)
    assert as_owner.get(JOBS).status_code == 429
    assert last(action="jobs.list").status_code == 429


def test_logins_record_the_username_never_the_password(anon, owner, org):
    assert anon.post("/api/v1/auth/login", {"username": owner.username, "password": "wrong-Pa55!"},
                     format="json").status_code == 401  # fmt: skip
    failed = last(action="auth.login")
    assert (failed.username, failed.actor_kind, failed.success, failed.organization_id) == (
        owner.username, ActorKind.ANONYMOUS, False, org.pk)  # fmt: skip
    assert failed.request_details["body"]["json"] == {"username": owner.username, "password": "[redacted]"}
    anon.post("/api/v1/auth/login", {"username": "nobody", "password": "x"}, format="json")
    assert (last(action="auth.login").username, last(action="auth.login").organization_id) == ("nobody", None)


def test_unknown_routes_and_middleware_answers_are_recorded(as_owner, settings):
    assert as_owner.get("/api/v1/nothing-here").status_code == 404
    assert last(action="unknown").path == "/api/v1/nothing-here"
    settings.REQUEST_MAX_QUERY_LENGTH = 10
    assert as_owner.get(JOBS + "?q=" + "x" * 20).status_code == 414
    assert last(status_code=414).success is False


SECRET = "s3cr3t-Value-0123456789"


def test_a_secret_sent_anywhere_in_a_request_is_stored_nowhere(owner_key, owner, settings):
    settings.AUDIT_REDACT_KEYS = ["^note$"]
    access = str(RefreshToken.for_user(owner).access_token)
    client = key_client(owner_key.raw_key)
    body = {"source_type": "text", "text": "hi", "metadata": {"password": SECRET, "deep": [{"token": SECRET}],
            "note": SECRET, "api_key": SECRET, "free text": f"my key is {owner_key.raw_key}"}}  # fmt: skip
    client.post(f"{JOBS}?token={SECRET}&api_key={SECRET}&page=1", body, format="json",
                HTTP_COOKIE=f"sessionid={SECRET}", HTTP_USER_AGENT=f"agent {access}")  # fmt: skip
    anon = key_client("dpk_nope_" + SECRET)
    anon.get(f"{JOBS}?confirm_token={SECRET}")
    key_response = client.post("/api/v1/auth/api-keys", {"name": "ci"}, format="json").json()
    client.post("/api/v1/webhooks", {"url": "https://93.184.216.34/h", "events": ["*"]}, format="json")
    anon_jwt = key_client("x")
    anon_jwt.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    anon_jwt.get(JOBS)

    with connection.cursor() as cursor:  # every column of every record, as the database holds it
        cursor.execute("SELECT row_to_json(audit_logs)::text FROM audit_logs")
        dump = "\n".join(row[0] for row in cursor.fetchall())
    assert AuditLog.objects.count() >= 5
    for secret in (SECRET, owner_key.raw_key, access, key_response["key"]):
        assert secret not in dump
    assert "whsec_" not in dump  # the webhook's secret was only in the answer
    record = last(action="jobs.create")
    assert record.request_details["query"] == {"token": "[redacted]", "api_key": "[redacted]", "page": "1"}
    metadata = record.request_details["body"]["json"]["metadata"]
    assert metadata["password"] == metadata["note"] == metadata["api_key"] == "[redacted]"
    assert metadata["free text"] == "my key is [redacted]"


def test_a_large_body_is_kept_as_a_capped_excerpt_and_uploads_never(as_owner, settings):
    settings.AUDIT_BODY_MAX = 100
    as_owner.post(JOBS, {"source_type": "text", "text": "y" * 5000}, format="json")
    body = last(action="jobs.create").request_details["body"]
    assert body["truncated"] is True and len(body["excerpt"]) == 100
    as_owner.post("/api/v1/upload", {"files": [_upload()]}, format="multipart")
    details = last(action="jobs.upload").request_details["body"]
    assert set(details) == {"content_type", "size"} and "upload content" not in json.dumps(details)


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("a.txt", b"upload content " * 10, content_type="text/plain")


def test_an_audit_failure_never_fails_the_request_and_the_record_is_written_later(as_owner, monkeypatch):
    from audit import services

    def broken(**fields):
        raise RuntimeError("database unavailable")

    real = services.audit_record
    monkeypatch.setattr(services, "audit_record", broken)
    response = as_owner.post(JOBS, TEXT, format="json")
    assert response.status_code == 201
    assert AuditLog.objects.filter(action="jobs.create").count() == 0 and get_redis().llen(QUEUED) == 1
    monkeypatch.setattr(services, "audit_record", real)
    assert audit_write_queued() == 1 and audit_write_queued() == 0
    assert last(action="jobs.create").resource_id == response.json()["id"]


def test_api_calls_are_queued_then_written_in_batches_by_one_writer_job(as_owner, org, settings):
    settings.AUDIT_DEFERRED_WRITES = True
    ids = [as_owner.post(JOBS, TEXT, format="json").json()["id"] for _ in range(5)]
    assert not AuditLog.objects.filter(action="jobs.create").exists() and get_redis().llen(QUEUED) == 5
    writers = Queue("high", connection=get_redis()).jobs
    assert [job.func_name for job in writers] == ["audit.tasks.write_queued_records"]  # one, for all five
    assert audit_write_queued(batch_size=2) == 5 and get_redis().llen(QUEUED) == 0
    records = AuditLog.objects.filter(action="jobs.create").order_by("seq")
    assert [record.resource_id for record in records] == ids
    assert chain.verify(str(org.pk))[1] is None
    # A writer that died after committing, before taking its batch off the queue: nothing twice.
    get_redis().rpush(QUEUED, json.dumps({"action": "jobs.list", "actor_kind": "user", "record_id": str(records[0].pk),
                                          "timestamp": records[0].timestamp.isoformat()}))  # fmt: skip
    assert audit_write_queued() == 0 and AuditLog.objects.filter(pk=records[0].pk).count() == 1


def test_the_writer_job_runs_on_a_worker_enqueued_at_most_once_a_second(as_owner, settings):
    settings.AUDIT_DEFERRED_WRITES = True
    as_owner.get(JOBS, HTTP_X_REQUEST_ID="first")
    SimpleWorker([Queue("high", connection=get_redis())], connection=get_redis()).work(burst=True)
    assert AuditLog.objects.filter(request_id="first").exists()
    get_redis().set(WRITER_DUE, 1, ex=60)  # as within the second after a request enqueued the writer
    as_owner.get(JOBS, HTTP_X_REQUEST_ID="second")  # left to the next writer
    assert len(Queue("high", connection=get_redis()).jobs) == 0
    get_redis().delete(WRITER_DUE)  # the second has passed
    as_owner.get(JOBS, HTTP_X_REQUEST_ID="third")
    assert len(Queue("high", connection=get_redis()).jobs) == 1


def test_when_redis_fails_the_record_is_written_directly(as_owner, settings, monkeypatch):
    from audit import services

    settings.AUDIT_DEFERRED_WRITES = True
    monkeypatch.setattr(services, "get_redis", lambda: None)  # rpush on None: fails like a refused connection
    assert as_owner.get(JOBS, HTTP_X_REQUEST_ID="direct-1").status_code == 200
    assert AuditLog.objects.filter(request_id="direct-1").exists()


def test_when_redis_fails_too_the_record_is_logged_whole(as_owner, monkeypatch, caplog):
    from audit import services

    monkeypatch.setattr(services, "audit_record", lambda **fields: 1 / 0)
    monkeypatch.setattr(services, "get_redis", lambda: None)
    assert as_owner.get(JOBS, HTTP_X_REQUEST_ID="req-lost-1").status_code == 200
    assert any("req-lost-1" in record.getMessage() for record in caplog.records if record.levelname == "ERROR")


def test_system_actions_are_recorded_as_the_system(org, owner, settings):
    principal = Principal(user=owner, organization=org, role=Role.ADMIN, permissions=ROLE_PERMISSIONS[Role.ADMIN])
    job, _ = job_services.job_create(principal=principal, source_type="text", text="x", priority=2)
    job_services.job_claim(job.pk, worker="w-gone")
    locked = Job.objects.get(pk=job.pk)
    locked.attempts = locked.max_attempts
    job_services.job_worker_lost(job=locked, message="worker w-gone stopped sending heartbeats")
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
    record = last(action="jobs.worker_lost")
    assert (record.actor_kind, record.organization_id, record.resource_id) == (ActorKind.SYSTEM, org.pk, str(job.pk))

    settings.SSRF_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with Receiver([Response(410)]) as receiver:
        subscription = WebhookSubscription.objects.create(organization=org, url=receiver.url(), events=["*"],
                                                          secret=signing.new_secret())  # fmt: skip
        delivery = WebhookDelivery.objects.create(
            organization=org, subscription=subscription, url=subscription.url, event_type="webhook.test", payload={},
            message_id="msg_1")  # fmt: skip
        deliver(delivery.pk)
    record = last(action="webhooks.disabled")
    assert (record.actor_kind, record.resource_id) == (ActorKind.SYSTEM, str(subscription.pk))
    assert "410" in record.request_details["reason"]


def test_results_expired_are_recorded_per_organization(org, owner, run_worker):
    from django.utils import timezone

    from jobs.models import JobResult

    principal = Principal(user=owner, organization=org, role=Role.ADMIN, permissions=ROLE_PERMISSIONS[Role.ADMIN])
    job, _ = job_services.job_create(principal=principal, source_type="text", text="x", priority=2)
    run_worker()
    JobResult.objects.update(expires_at=timezone.now())
    assert job_services.job_results_expire() == 1
    record = last(action="jobs.results_expired")
    assert record.request_details == {"count": 1, "jobs": [str(job.pk)]} and record.organization_id == org.pk


def test_results_expire_in_batches_once_each_even_when_two_runs_race(org, owner, run_worker):
    from django.utils import timezone

    from jobs.models import JobResult

    principal = Principal(user=owner, organization=org, role=Role.ADMIN, permissions=ROLE_PERMISSIONS[Role.ADMIN])
    for index in range(5):
        job_services.job_create(principal=principal, source_type="text", text=f"text {index}", priority=2)
    run_worker()
    JobResult.objects.update(expires_at=timezone.now())
    assert job_services.job_results_expire(dry_run=True) == 5 and JobResult.objects.count() == 5
    counts = in_threads(lambda: job_services.job_results_expire(batch_size=2))
    assert sum(counts) == 5 and not JobResult.objects.exists()
    expired = AuditLog.objects.filter(action="jobs.results_expired").values_list("request_details", flat=True)
    assert sum(details["count"] for details in expired) == 5


def test_staff_actions_in_the_admin_are_recorded_as_staff_one_by_one_and_in_bulk(org, other_org, rf):
    from django.contrib import admin

    from accounts.models import Organization
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True, is_superuser=True)
    request = rf.post("/admin/accounts/organization/")
    request.user = staff
    model_admin = admin.site._registry[Organization]
    model_admin.log_change(request, org, [{"changed": {"fields": ["Name"]}}])  # what the change form does
    record = last(action="admin.change")
    assert (record.actor_kind, record.user_id, record.username) == (ActorKind.STAFF, staff.pk, staff.username)
    assert (record.resource_type, record.resource_id, record.organization_id) == ("organization", str(org.pk), org.pk)
    assert record.request_details == {"object": str(org), "change": [{"changed": {"fields": ["Name"]}}]}
    model_admin.log_deletions(request, Organization.objects.all())  # "delete selected": Django's bulk path
    assert set(AuditLog.objects.filter(action="admin.delete").values_list("resource_id", flat=True)) == {
        str(org.pk), str(other_org.pk)}  # fmt: skip
