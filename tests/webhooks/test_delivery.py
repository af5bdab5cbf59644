"""Delivery to a real receiver on loopback, every message verified with the Standard Webhooks
reference library: outcomes, retries, redelivery, rotation, SSRF, auto-disable and recovery."""

import json
import socket
from datetime import timedelta

import pytest
import urllib3
from django.utils import timezone
from rq import Queue, SimpleWorker
from rq.job import Job as RQJob
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pipeline_project.lib.redis import get_redis
from tests.webhooks.receiver import Receiver, Response
from webhooks import queueing, signing
from webhooks.delivery import deliver, delivery_redeliver, signing_secrets
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from webhooks.recovery import reenqueue_due_deliveries
from webhooks.services import default_secret

pytestmark = pytest.mark.django_db(transaction=True)

PAYLOAD = {"type": "job.completed", "timestamp": "2026-11-24T12:00:00Z", "data": {"id": "j1", "name": "Zoë"}}


@pytest.fixture
def receiver(settings):
    settings.SSRF_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def subscription(org, receiver):
    return WebhookSubscription.objects.create(
        organization=org, url=receiver.url(), events=["*"], secret=signing.new_secret()
    )


def make_delivery(subscription=None, *, org=None, url=None, **fields) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        organization=org or subscription.organization,
        subscription=subscription,
        url=url or subscription.url,
        event_type=PAYLOAD["type"],
        payload=PAYLOAD,
        message_id=signing.new_message_id(),
        **fields,
    )


def drain() -> None:
    """Runs every queued (not scheduled) delivery in this process, as a worker would."""
    redis = get_redis()
    SimpleWorker([Queue(queueing.QUEUE, connection=redis)], connection=redis).work(burst=True, with_scheduler=False)


def verify(secret: str, request) -> dict:
    return Webhook(secret).verify(request.body, request.headers)


def test_it_delivers_a_signed_message(subscription, receiver):
    delivery = make_delivery(subscription)
    assert deliver(delivery.pk) == DeliveryStatus.SUCCEEDED

    [request] = receiver.requests
    assert verify(subscription.secret, request) == PAYLOAD
    assert request.method == "POST"
    assert request.headers["webhook-id"] == delivery.message_id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == signing.USER_AGENT
    assert json.loads(request.body) == PAYLOAD
    assert "Zoë".encode() in request.body  # ensure_ascii=False: the exact bytes signed
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert (delivery.attempts, delivery.response_status, delivery.response_body) == (1, 200, "ok")
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    assert delivery.duration_ms is not None and delivery.last_error == ""


def test_it_skips_deliveries_not_due_or_finished(subscription, receiver):
    later = make_delivery(subscription, next_attempt_at=timezone.now() + timedelta(minutes=5))
    done = make_delivery(subscription, status=DeliveryStatus.SUCCEEDED)
    assert deliver(later.pk) is None
    assert deliver(done.pk) is None
    assert receiver.requests == []


def test_it_retries_a_500_and_delivers_on_the_second_attempt(subscription, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 0]
    receiver.script(Response(500, body=b"boom"))
    subscription.failing_since = None
    delivery = make_delivery(subscription)
    queueing.enqueue(delivery.pk)
    drain()

    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.message_id
    assert verify(subscription.secret, first) == verify(subscription.secret, second) == PAYLOAD
    assert first.body == second.body
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (DeliveryStatus.SUCCEEDED, 2, 200)
    subscription.refresh_from_db()
    assert subscription.failing_since is None and subscription.consecutive_failures == 0


def test_a_failure_is_recorded_and_counted_on_the_subscription(subscription, receiver):
    receiver.script(Response(500, body=b"x" * 5000))
    delivery = make_delivery(subscription)
    assert deliver(delivery.pk) == DeliveryStatus.RETRYING
    delivery.refresh_from_db()
    assert (delivery.response_status, delivery.last_error) == (500, "HTTP 500.")
    assert delivery.response_body == "x" * 2048
    assert delivery.next_attempt_at > timezone.now()
    subscription.refresh_from_db()
    assert subscription.failing_since is not None and subscription.consecutive_failures == 1
    assert subscription.is_active


def test_a_scheduled_retry_is_left_on_rq_after_the_attempt_ends(subscription, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 300]
    receiver.script(Response(503))
    delivery = make_delivery(subscription)
    queueing.enqueue(delivery.pk)
    drain()

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING
    job_id = f"delivery-{delivery.pk}-2"  # the RQ job of attempt 2
    assert job_id in Queue(queueing.QUEUE, connection=get_redis()).scheduled_job_registry.get_job_ids()
    assert get_redis().ttl(RQJob.key_for(job_id)) == -1  # the job hash does not expire before it runs
    assert RQJob.fetch(job_id, connection=get_redis()).get_status() == "scheduled"
    assert reenqueue_due_deliveries() == 0


def test_410_disables_the_subscription(subscription, receiver):
    receiver.script(Response(410))
    delivery = make_delivery(subscription)
    assert deliver(delivery.pk) == DeliveryStatus.FAILED
    subscription.refresh_from_db()
    assert not subscription.is_active and subscription.disabled_at is not None
    assert "410 Gone" in subscription.disabled_reason
    later = make_delivery(subscription)
    assert deliver(later.pk) == DeliveryStatus.FAILED  # a disabled subscription sends nothing
    assert len(receiver.requests) == 1


def test_a_timeout_is_retried(subscription, receiver, settings):
    settings.WEBHOOK_TIMEOUT = 1
    receiver.script(Response(200, delay=2.5))
    delivery = make_delivery(subscription)
    assert deliver(delivery.pk) == DeliveryStatus.RETRYING
    delivery.refresh_from_db()
    assert "timed out" in delivery.last_error.lower()
    assert delivery.response_status is None and delivery.next_attempt_at > timezone.now()


@pytest.mark.parametrize("retry_after", ["120", "http-date"])
def test_retry_after_is_honoured(subscription, receiver, retry_after):
    if retry_after == "http-date":
        from email.utils import format_datetime

        retry_after = format_datetime(timezone.now() + timedelta(seconds=130), usegmt=True)
    receiver.script(Response(429, headers={"Retry-After": retry_after}))
    delivery = make_delivery(subscription)
    before = timezone.now()
    assert deliver(delivery.pk) == DeliveryStatus.RETRYING
    delivery.refresh_from_db()
    assert delivery.next_attempt_at >= before + timedelta(seconds=119)


def test_a_redirect_is_a_failure_and_is_not_followed(subscription, receiver):
    receiver.script(Response(302, headers={"Location": receiver.url("/elsewhere")}))
    delivery = make_delivery(subscription)
    assert deliver(delivery.pk) == DeliveryStatus.RETRYING
    delivery.refresh_from_db()
    assert delivery.response_status == 302 and "redirect" in delivery.last_error
    assert receiver.requests_to("/elsewhere") == []


def test_it_fails_when_the_schedule_is_exhausted(subscription, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 0, 0]
    receiver.script(Response(500), Response(502), Response(500))
    delivery = make_delivery(subscription)
    queueing.enqueue(delivery.pk)
    drain()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (DeliveryStatus.FAILED, 3, None)
    assert len(receiver.requests) == 3
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 3 and subscription.is_active


def test_redeliver_sends_the_same_message_again(subscription, receiver):
    delivery = make_delivery(subscription)
    deliver(delivery.pk)
    delivery.refresh_from_db()
    delivery_redeliver(delivery=delivery)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.delivered_at) == (DeliveryStatus.PENDING, None)
    drain()

    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.message_id
    assert verify(subscription.secret, second) == PAYLOAD
    assert receiver.message_ids == {delivery.message_id: 2}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 2)


def test_redeliver_works_from_failed(subscription, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0]
    receiver.script(Response(500))
    delivery = make_delivery(subscription)
    assert deliver(delivery.pk) == DeliveryStatus.FAILED
    delivery_redeliver(delivery=delivery)
    drain()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 2)


def test_both_secrets_verify_during_a_rotation_and_only_the_new_one_after(subscription, receiver):
    old, new = subscription.secret, signing.new_secret()
    subscription.secret, subscription.previous_secret = new, old
    subscription.previous_secret_expires_at = timezone.now() + timedelta(hours=1)
    subscription.save()
    assert signing_secrets(subscription) == [new, old]
    deliver(make_delivery(subscription).pk)
    during = receiver.requests[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verify(old, during) == verify(new, during) == PAYLOAD

    subscription.previous_secret_expires_at = timezone.now() - timedelta(seconds=1)
    subscription.save()
    deliver(make_delivery(subscription).pk)
    after = receiver.requests[-1]
    assert verify(new, after) == PAYLOAD
    with pytest.raises(WebhookVerificationError):
        verify(old, after)


def test_a_jobs_own_webhook_url_is_signed_with_the_default_secret(org, other_org, receiver):
    delivery = make_delivery(org=org, url=receiver.url("/own"))
    assert deliver(delivery.pk) == DeliveryStatus.SUCCEEDED
    secret = default_secret(organization=org)
    assert secret.secret.startswith("whsec_") and default_secret(organization=org).secret == secret.secret
    [request] = receiver.requests
    assert verify(secret.secret, request) == PAYLOAD
    with pytest.raises(WebhookVerificationError):
        verify(default_secret(organization=other_org).secret, request)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://2130706433:{port}/hook",  # 127.0.0.1 as one number
        "http://0x7f000001:{port}/hook",  # and in hexadecimal
        "http://hooks.example.com:{port}/hook",  # a public-looking name that resolves to loopback (below)
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_unsafe_urls_fail_at_delivery_without_any_connection(org, monkeypatch, url):
    """Checked again at every delivery: a URL accepted once (or a name whose DNS changed since) is refused."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real_getaddrinfo("127.0.0.1" if host == "hooks.example.com" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with Receiver() as receiver:  # without SSRF_ALLOWED_NETWORKS: loopback is refused too
        opened = []
        monkeypatch.setattr(urllib3.HTTPConnectionPool, "urlopen", lambda *a, **k: opened.append(a))
        subscription = WebhookSubscription.objects.create(
            organization=org, url=url.format(port=receiver.port), events=["*"], secret=signing.new_secret()
        )
        delivery = make_delivery(subscription)
        assert deliver(delivery.pk) == DeliveryStatus.FAILED
        assert opened == [] and receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("Unsafe URL") and delivery.next_attempt_at is None


def test_a_subscription_failing_for_too_long_is_disabled(subscription, receiver, settings):
    receiver.script(Response(500), Response(500))
    subscription.failing_since = timezone.now() - timedelta(days=1)
    subscription.consecutive_failures = 7
    subscription.save()
    deliver(make_delivery(subscription).pk)
    subscription.refresh_from_db()
    assert subscription.is_active and subscription.consecutive_failures == 8

    subscription.failing_since = timezone.now() - timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER + 1)
    subscription.save()
    deliver(make_delivery(subscription).pk)
    subscription.refresh_from_db()
    assert not subscription.is_active and subscription.disabled_at is not None
    assert "failed for 5 days" in subscription.disabled_reason


def test_recovery_reenqueues_due_deliveries_redis_lost_and_they_are_delivered_once(subscription, receiver):
    due = make_delivery(subscription, next_attempt_at=timezone.now() - timedelta(minutes=1))
    fresh = make_delivery(subscription)  # just created: left to its after-commit enqueue
    queueing.enqueue(due.pk)
    get_redis().flushdb()

    assert reenqueue_due_deliveries() == 1
    assert reenqueue_due_deliveries() == 0  # its RQ job is queued now
    drain()
    assert reenqueue_due_deliveries() == 0
    drain()

    due.refresh_from_db()
    fresh.refresh_from_db()
    assert due.status == DeliveryStatus.SUCCEEDED and fresh.status == DeliveryStatus.PENDING
    assert receiver.message_ids == {due.message_id: 1}
    assert verify(subscription.secret, receiver.requests[0]) == PAYLOAD


def test_a_worker_that_died_mid_attempt_is_recovered_after_its_lease(subscription, receiver, settings):
    delivery = make_delivery(subscription)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=1, next_attempt_at=timezone.now() - timedelta(minutes=1)
    )  # claimed, the lease over, no RQ job left
    assert reenqueue_due_deliveries() == 1
    drain()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 2)


def test_the_cron_config_registers_jobs_and_webhooks_recovery():
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=get_redis())
    scheduler.load_config_from_file("pipeline_project.cron")
    names = {job.name for job in scheduler.get_jobs()}
    assert {"recover_jobs", "expire_results", "recover_webhook_deliveries"} <= names


def test_two_workers_never_send_the_same_attempt(subscription, receiver):
    import threading

    from django.db import connection

    receiver.script(Response(200, delay=0.5))
    delivery = make_delivery(subscription)
    results = []

    def run():
        try:
            results.append(deliver(delivery.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=str) == [None, DeliveryStatus.SUCCEEDED]
    assert len(receiver.requests) == 1
