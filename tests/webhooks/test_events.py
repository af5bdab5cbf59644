"""Events announced by jobs and pipelines become deliveries in the same transaction (the outbox),
are sent to the subscriptions that want them and to a job's own ``webhook_url``, and are never
lost: not to a process dying between commit and enqueue, nor to a flushed Redis."""

import json
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from django.db import transaction
from rq import Queue
from standardwebhooks.webhooks import Webhook

from accounts.principal import Principal
from accounts.roles import ROLE_PERMISSIONS, Role
from jobs import recovery, services
from jobs.announcements import EVENT_FOR_STATUS
from jobs.models import Job, JobStatus
from pipeline_project.lib.redis import get_redis
from pipelines.models import Pipeline
from pipelines.services import default_pipeline_version
from tests.jobs.workers import ROOT, environment
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import drain
from webhooks import queueing, signing
from webhooks.events import EVENT_TYPES
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from webhooks.recovery import kick_overdue_deliveries
from webhooks.services import default_secret

pytestmark = pytest.mark.django_db(transaction=True)

JOB_LIFE = ["job.created", "job.queued", "job.started", "job.completed"]
JOB_EVENTS = [*JOB_LIFE, "job.failed", "job.cancelled"]


@pytest.fixture
def receiver(settings):
    settings.SSRF_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.PUBLIC_URL = "http://testserver"  # the links in messages, as the test client's answers show them
    with Receiver() as receiver:
        yield receiver


def subscribe(org, receiver, events, path="/hook", **fields) -> WebhookSubscription:
    return WebhookSubscription.objects.create(
        organization=org, url=receiver.url(path), events=events, secret=signing.new_secret(), **fields
    )


def messages(receiver, path="/hook") -> list[dict]:
    return [json.loads(request.body) for request in receiver.requests_to(path)]


def types(receiver, path="/hook") -> list[str]:
    return [message["type"] for message in messages(receiver, path)]


def text_job(client, **fields) -> dict:
    response = client.post("/api/v1/jobs", {"source_type": "text", "text": "Hello, world.", **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_each_subscription_gets_the_events_it_asked_for(org, as_owner, receiver, run_worker):
    default_pipeline_version(organization=org)
    every = subscribe(org, receiver, ["*"], "/every")
    finished = subscribe(org, receiver, ["job.completed", "job.failed"], "/finished")
    subscribe(org, receiver, ["pipeline.updated"], "/pipelines")
    subscribe(org, receiver, ["*"], "/disabled", is_active=False)
    job = text_job(as_owner)
    run_worker()
    drain()

    assert types(receiver, "/every") == JOB_LIFE
    assert types(receiver, "/finished") == ["job.completed"]
    assert types(receiver, "/pipelines") == types(receiver, "/disabled") == []
    for subscription, path in ((every, "/every"), (finished, "/finished")):  # each signed with its own secret
        for request in receiver.requests_to(path):
            Webhook(subscription.secret).verify(request.body, request.headers)
    assert {message["data"]["id"] for message in messages(receiver, "/every")} == {job["id"]}
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 5


def test_a_message_carries_the_job_as_get_jobs_id_shows_it(org, as_owner, receiver, run_worker):
    subscribe(org, receiver, JOB_EVENTS)
    job = text_job(as_owner, metadata={"batch": 7})
    run_worker()
    drain()

    created, queued, started, completed = messages(receiver)
    assert completed["data"] == as_owner.get(f"/api/v1/jobs/{job['id']}").json()
    assert created["data"] == queued["data"] == job | {"max_attempts": 3, "files": created["data"]["files"],
                                                       "retries": []}  # fmt: skip
    assert (started["data"]["status"], started["data"]["attempts"], started["data"]["files"][0]["status"]) == (
        "processing", 1, "processing")  # fmt: skip
    assert completed["data"]["status"] == "completed" and completed["data"]["progress"]["percent"] == 100
    assert completed["timestamp"].endswith("Z") and set(completed) == {"type", "timestamp", "data"}


def test_a_jobs_own_webhook_url_gets_its_job_events_signed_with_the_default_secret(org, as_owner, receiver, run_worker):
    job = text_job(as_owner, webhook_url=receiver.url("/own"))
    text_job(as_owner)  # another job, without a webhook_url
    run_worker()
    drain()

    assert types(receiver, "/own") == JOB_LIFE
    assert {message["data"]["id"] for message in messages(receiver, "/own")} == {job["id"]}
    secret = as_owner.get("/api/v1/webhooks/default/secret").json()["secret"]
    assert secret == default_secret(organization=org).secret
    for request in receiver.requests_to("/own"):
        Webhook(secret).verify(request.body, request.headers)
    assert set(WebhookDelivery.objects.values_list("subscription", flat=True)) == {None}


def test_events_never_cross_organizations(org, other_org, as_owner, as_outsider, receiver, run_worker):
    ours, theirs = subscribe(org, receiver, ["*"], "/ours"), subscribe(other_org, receiver, ["*"], "/theirs")
    mine, their_job = text_job(as_owner), text_job(as_outsider)
    as_outsider.post("/api/v1/pipelines", {"name": "theirs", "config": {"stages": [{"name": "detect"}]}},
                     format="json")  # fmt: skip
    run_worker()
    drain()

    for organization, path, job in ((org, "/ours", mine), (other_org, "/theirs", their_job)):
        objects = {
            str(job["id"]),
            *(str(pk) for pk in Pipeline.objects.filter(organization=organization).values_list("pk", flat=True)),
        }
        assert {message["data"]["id"] for message in messages(receiver, path)} == objects
    assert types(receiver, "/theirs").count("pipeline.created") == 2  # their default pipeline, and "theirs"
    assert set(WebhookDelivery.objects.filter(subscription=ours).values_list("organization", flat=True)) == {org.pk}
    assert set(WebhookDelivery.objects.filter(subscription=theirs).values_list("organization", flat=True)) == {
        other_org.pk
    }


def test_pipelines_announce_created_updated_and_deleted(org, as_owner, receiver):
    subscribe(org, receiver, ["pipeline.created", "pipeline.updated", "pipeline.deleted"])
    pipeline = as_owner.post("/api/v1/pipelines", {"name": "fast", "config": {"stages": [{"name": "detect"}]}},
                             format="json").json()  # fmt: skip
    updated = as_owner.patch(f"/api/v1/pipelines/{pipeline['id']}", {"description": "quick"}, format="json").json()
    assert as_owner.delete(f"/api/v1/pipelines/{pipeline['id']}").status_code == 204
    drain()

    created, changed, deleted = messages(receiver)
    assert (created["type"], changed["type"], deleted["type"]) == ("pipeline.created", "pipeline.updated",
                                                                   "pipeline.deleted")  # fmt: skip
    assert created["data"] == pipeline and changed["data"] == updated == deleted["data"]


def test_drafts_announce_queued_when_started_and_cancellations_are_announced(org, as_owner, receiver):
    subscribe(org, receiver, JOB_EVENTS)
    draft = text_job(as_owner, start=False)
    assert as_owner.post(f"/api/v1/jobs/{draft['id']}/start").status_code == 200
    job = Job.objects.get(pk=draft["id"])
    services.job_cancel(job=job, actor="test")
    drain()

    assert types(receiver) == ["job.created", "job.queued", "job.cancelled"]
    assert [message["data"]["status"] for message in messages(receiver)] == ["draft", "queued", "cancelled"]


def test_a_change_that_rolls_back_leaves_no_delivery_and_enqueues_nothing(org, owner, receiver):
    subscribe(org, receiver, ["*"])
    principal = Principal(user=owner, organization=org, role=Role.ADMIN, permissions=ROLE_PERMISSIONS[Role.ADMIN])
    with pytest.raises(RuntimeError), transaction.atomic():
        services.job_create(principal=principal, source_type="text", text="Hello", priority=2)
        # written in the job's transaction (as the default pipeline, created on first use)
        assert sorted(WebhookDelivery.objects.values_list("event_type", flat=True)) == [
            "job.created", "job.queued", "pipeline.created"]  # fmt: skip
        raise RuntimeError("the caller's transaction fails")
    assert (Job.objects.count(), WebhookDelivery.objects.count()) == (0, 0)
    assert Queue(queueing.QUEUE, connection=get_redis()).count == 0


def test_every_announced_event_type_can_be_subscribed_to():
    assert {"job.created", *EVENT_FOR_STATUS.values()} <= set(EVENT_TYPES)


def test_nothing_is_written_for_an_organization_nobody_listens_to(org, as_owner, run_worker):
    text_job(as_owner)
    run_worker()
    assert WebhookDelivery.objects.count() == 0


# A process that dies right after a commit, before its after-commit enqueues (of the job, and the
# kick for its deliveries): ``web`` creates a job; ``worker`` processes one and dies once it has
# committed the job's completion (its second kick; the first was job.started's).
DYING = textwrap.dedent(
    """
    import os, sys
    import django
    django.setup()
    from accounts.models import Organization, User
    from accounts.principal import Principal
    from accounts.roles import ROLE_PERMISSIONS, Role
    from jobs import engine, queueing as job_queueing, services
    from webhooks import queueing

    calls = []

    def enqueue_then_die_at(n):
        real = queueing.kick
        def enqueue(*args, **kwargs):
            calls.append(1)
            if len(calls) >= n:
                os._exit(9)
            return real(*args, **kwargs)
        return enqueue

    mode, arg = sys.argv[1], sys.argv[2]
    if mode == "web":
        queueing.kick = job_queueing.enqueue_many = enqueue_then_die_at(1)
        user = User.objects.get(pk=arg)
        organization = Organization.objects.get(memberships__user=user)
        principal = Principal(user=user, organization=organization, role=Role.ADMIN,
                              permissions=ROLE_PERMISSIONS[Role.ADMIN])
        services.job_create(principal=principal, source_type="text", text="Made by a dying web process.", priority=2)
    else:
        queueing.kick = enqueue_then_die_at(2)
        engine.job_process(arg)
    sys.exit(0)
    """
)


def die_after_commit(mode: str, arg, settings) -> None:
    process = subprocess.run([sys.executable, "-c", DYING, mode, str(arg)], cwd=ROOT, capture_output=True,
                             env=environment(settings.MEDIA_ROOT), timeout=120)  # fmt: skip
    assert process.returncode == 9, process.stderr.decode()[-3000:]


def test_no_event_is_lost_to_a_process_dying_between_commit_and_enqueue_nor_to_a_flushed_redis(
    org, owner, as_owner, receiver, run_worker, settings, monkeypatch
):
    default_pipeline_version(organization=org)
    subscribe(org, receiver, ["*"])
    processed_by_dying_worker = text_job(as_owner)["id"]
    die_after_commit("web", owner.pk, settings)
    die_after_commit("worker", processed_by_dying_worker, settings)
    made_by_dying_web = Job.objects.exclude(pk=processed_by_dying_worker).get().pk
    assert Job.objects.get(pk=processed_by_dying_worker).status == JobStatus.COMPLETED
    assert WebhookDelivery.objects.count() == 6  # 4 + created and queued of the dying web's job
    get_redis().flushdb()  # and Redis loses whatever it held

    monkeypatch.setattr(recovery, "RECONCILE_GRACE", timedelta(0))
    assert recovery.reconcile_queued_jobs() == 1  # the dying web's job
    assert kick_overdue_deliveries(grace=timedelta(0)) == 1  # one batch holds the 6
    run_worker()
    drain()
    # Recovery running again, and more kicks than there were deliveries, send nothing twice.
    assert kick_overdue_deliveries(grace=timedelta(0)) == 0
    queueing.kick(WebhookDelivery.objects.count())
    drain()

    received = messages(receiver)
    assert sorted((message["data"]["id"], message["type"]) for message in received) == sorted(
        (str(job_id), event) for job_id in (processed_by_dying_worker, made_by_dying_web) for event in JOB_LIFE
    )
    assert set(receiver.message_ids.values()) == {1}  # each message once: nothing for the dedup to drop
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
