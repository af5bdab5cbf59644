"""Delivery to a real receiver on loopback, every message verified with the Standard Webhooks
reference library: outcomes, retries, redelivery, rotation, SSRF, auto-disable, recovery, and
batches (bounded statements, kept connections, continuations, racing workers)."""

import json
import socket
from datetime import timedelta

import pytest
import urllib3
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rq import Queue, SimpleWorker
from rq.job import Job as RQJob
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pipeline_project.lib.redis import get_redis
from tests.concurrency import in_threads
from tests.webhooks.receiver import Receiver, Response
from webhooks import queueing, signing
from webhooks.delivery import deliver, deliver_due, delivery_redeliver, signing_secrets
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from webhooks.recovery import kick_overdue_deliveries
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
    """A delivery due now, as the outbox writes them."""
    fields.setdefault("next_attempt_at", timezone.now())
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


def test_a_delivery_made_by_hand_without_a_due_time_is_delivered_by_id(subscription, receiver):
    delivery = make_delivery(subscription, next_attempt_at=None)
    assert deliver(delivery.pk) == DeliveryStatus.SUCCEEDED
    assert receiver.message_ids == {delivery.message_id: 1}


def test_it_retries_a_500_and_delivers_on_the_second_attempt(subscription, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 0]
    receiver.script(Response(500, body=b"boom"))
    subscription.failing_since = None
    delivery = make_delivery(subscription)
    queueing.kick()
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


def test_a_scheduled_retry_is_a_kick_scheduled_on_rq_for_its_time(subscription, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 300]
    receiver.script(Response(503))
    delivery = make_delivery(subscription)
    queueing.kick()
    drain()

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING
    registry = Queue(queueing.QUEUE, connection=get_redis()).scheduled_job_registry
    [job_id] = registry.get_job_ids()
    lag = (registry.get_scheduled_time(job_id) - delivery.next_attempt_at).total_seconds()
    assert 0 <= lag < 1  # the retry's time, rounded up to the second
    assert get_redis().ttl(RQJob.key_for(job_id)) == -1  # the job hash does not expire before it runs
    job = RQJob.fetch(job_id, connection=get_redis())
    assert (job.get_status(), job.func_name) == ("scheduled", queueing.DELIVER_DUE)
    assert kick_overdue_deliveries() == 0


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
    queueing.kick()
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


def test_recovery_kicks_for_deliveries_redis_lost_and_they_are_delivered_once(subscription, receiver):
    fresh = make_delivery(subscription)  # just created: left to its after-commit kick
    assert kick_overdue_deliveries() == 0
    due = make_delivery(subscription, next_attempt_at=timezone.now() - timedelta(minutes=1))
    queueing.kick()
    get_redis().flushdb()

    assert kick_overdue_deliveries() == 1
    assert kick_overdue_deliveries() == 0  # a kick is waiting on the queue
    drain()
    assert kick_overdue_deliveries() == 0
    queueing.kick(3)  # kicks again: nothing is sent twice
    drain()

    due.refresh_from_db()
    fresh.refresh_from_db()
    assert due.status == fresh.status == DeliveryStatus.SUCCEEDED  # a kick delivers everything due
    assert receiver.message_ids == {due.message_id: 1, fresh.message_id: 1}
    assert all(verify(subscription.secret, request) == PAYLOAD for request in receiver.requests)


def test_recovery_kicks_one_worker_per_batch_of_overdue_deliveries(subscription, receiver, monkeypatch):
    monkeypatch.setattr(queueing, "BATCH", 2)
    monkeypatch.setattr("webhooks.recovery.BATCH", 2)
    monkeypatch.setattr("webhooks.recovery.MAX_KICKS", 2)
    for _ in range(3):
        make_delivery(subscription, next_attempt_at=timezone.now() - timedelta(minutes=1))
    assert kick_overdue_deliveries() == 2
    assert kick_overdue_deliveries() == 0
    for _ in range(3):
        make_delivery(subscription, next_attempt_at=timezone.now() - timedelta(minutes=1))
    get_redis().flushdb()
    assert kick_overdue_deliveries() == 2  # capped per run


def test_a_worker_that_died_mid_attempt_is_recovered_after_its_lease(subscription, receiver, settings):
    delivery = make_delivery(subscription)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=1, next_attempt_at=timezone.now() - timedelta(minutes=1)
    )  # claimed, the lease over, no RQ job left
    assert kick_overdue_deliveries() == 1
    drain()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 2)


def test_the_cron_config_registers_every_periodic_job():
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=get_redis())
    scheduler.load_config_from_file("pipeline_project.cron")
    names = {job.name for job in scheduler.get_jobs()}
    assert {"recover_jobs", "expire_results", "recover_webhook_deliveries", "write_queued_audit_records",
            "expire_api_keys", "prune_webhook_deliveries", "cleanup_uploads", "prune_audit_logs"} <= names  # fmt: skip


def test_two_workers_never_send_the_same_attempt(subscription, receiver):
    receiver.script(Response(200, delay=0.5))
    delivery = make_delivery(subscription)
    results = in_threads(lambda: deliver(delivery.pk))
    assert sorted(results, key=str) == [None, DeliveryStatus.SUCCEEDED]
    assert len(receiver.requests) == 1


# --- Batches ----------------------------------------------------------------------------------------


def batch_of(subscriptions, per_subscription: int) -> list[WebhookDelivery]:
    """``per_subscription`` due deliveries to each subscription."""
    return [make_delivery(subscription) for subscription in subscriptions for _ in range(per_subscription)]


@pytest.mark.parametrize("per_subscription", [2, 12])
def test_a_batch_costs_the_same_few_statements_whatever_its_size(org, receiver, per_subscription):
    subscriptions = [
        WebhookSubscription.objects.create(
            organization=org,
            url=receiver.url(f"/s{i}"),
            events=["*"],
            secret=signing.new_secret(),
            consecutive_failures=i,
        )
        for i in range(3)
    ]
    default_secret(organization=org)  # made on first use otherwise (one get_or_create)
    deliveries = batch_of(subscriptions, per_subscription) + [
        make_delivery(org=org, url=receiver.url("/own")) for _ in range(per_subscription)
    ]  # and to a job's own webhook_url

    with CaptureQueriesContext(connection) as queries:
        assert deliver_due(limit=50) == len(deliveries)
    statements = [query["sql"].split()[0] for query in queries]
    # claim; subscriptions' secrets; the default secret; every success; failure state cleared
    assert statements == ["UPDATE", "SELECT", "SELECT", "WITH", "UPDATE"], statements
    assert set(WebhookDelivery.objects.values_list("status", "attempts", "response_status")) == {
        (DeliveryStatus.SUCCEEDED, 1, 200)
    }
    assert len(receiver.requests) == len(receiver.message_ids) == len(deliveries)
    for subscription in subscriptions:
        subscription.refresh_from_db()
        assert (subscription.failing_since, subscription.consecutive_failures) == (None, 0)
        for request in receiver.requests_to(f"/s{subscriptions.index(subscription)}"):
            assert verify(subscription.secret, request) == PAYLOAD
    for request in receiver.requests_to("/own"):
        assert verify(default_secret(organization=org).secret, request) == PAYLOAD


def test_a_batch_keeps_its_connections(subscription, receiver):
    batch_of([subscription], 10)
    assert deliver_due(limit=50) == 10
    assert len(receiver.requests) == 10 and receiver.connections == 1


def test_a_connection_is_not_kept_after_a_long_answer(subscription, receiver):
    receiver.script(Response(200, body=b"x" * 100_000), Response(200), Response(200))
    batch_of([subscription], 3)
    assert deliver_due(limit=50) == 3
    assert len(receiver.requests) == 3 and receiver.connections == 2


def test_a_full_batch_makes_sure_a_continuation_is_waiting(subscription, receiver):
    batch_of([subscription], 8)
    queue = Queue(queueing.QUEUE, connection=get_redis())
    assert deliver_due(limit=3) == 3
    assert [job.func_name for job in queue.get_jobs()] == [queueing.DELIVER_DUE]
    assert deliver_due(limit=3) == 3
    assert queue.count == 1  # one was waiting already: one kick ahead, not one per batch
    assert deliver_due(limit=3) == 2  # not full: no continuation
    assert queue.count == 1
    drain()
    assert len(receiver.requests) == len(receiver.message_ids) == 8


def test_a_batch_out_of_time_releases_what_it_did_not_send(subscription, receiver, monkeypatch):
    monkeypatch.setattr("webhooks.delivery.send_budget", lambda: -1)
    first, *rest = batch_of([subscription], 3)
    assert deliver_due(limit=50) == 3

    assert len(receiver.requests) == 1  # the first POST of a batch is always sent
    first.refresh_from_db()
    assert (first.status, first.attempts) == (DeliveryStatus.SUCCEEDED, 1)
    for delivery in rest:
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
        assert delivery.next_attempt_at <= timezone.now()
    assert Queue(queueing.QUEUE, connection=get_redis()).count == 1  # kicked for the released ones


def test_a_batch_fails_the_deliveries_of_a_disabled_subscription_unsent(org, subscription, receiver):
    disabled = WebhookSubscription.objects.create(organization=org, url=receiver.url("/off"), events=["*"],
                                                  secret=signing.new_secret(), is_active=False)  # fmt: skip
    batch_of([subscription, disabled], 2)
    assert deliver_due(limit=50) == 4
    assert receiver.requests_to("/off") == [] and len(receiver.requests) == 2
    off = WebhookDelivery.objects.filter(subscription=disabled)
    assert set(off.values_list("status", "attempts", "last_error")) == {
        (DeliveryStatus.FAILED, 0, "The subscription is disabled.")
    }


def test_a_batch_records_successes_and_failures_each_their_way(subscription, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 300]
    receiver.script(Response(200), Response(500), Response(200))
    deliveries = batch_of([subscription], 3)
    assert deliver_due(limit=50) == 3
    statuses = {d.pk: d.status for d in WebhookDelivery.objects.all()}
    assert sorted(statuses.values()) == [DeliveryStatus.RETRYING, DeliveryStatus.SUCCEEDED, DeliveryStatus.SUCCEEDED]
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 1 and subscription.failing_since is not None
    assert len(Queue(queueing.QUEUE, connection=get_redis()).scheduled_job_registry) == 1  # the retry's kick
    assert {d.pk for d in deliveries} == set(statuses)


def test_two_workers_racing_over_a_backlog_send_each_message_once(subscription, receiver):
    deliveries = batch_of([subscription], 40)
    claimed = []

    def drain_in_batches():
        while count := deliver_due(limit=5):
            claimed.append(count)

    in_threads(drain_in_batches)
    assert sum(claimed) == 40
    assert receiver.message_ids == {delivery.message_id: 1 for delivery in deliveries}
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {(DeliveryStatus.SUCCEEDED, 1)}


def test_the_outbox_kicks_one_worker_per_batch():
    assert [queueing.kicks_for(n) for n in (0, 1, 50, 51, 120)] == [1, 1, 1, 2, 3]
