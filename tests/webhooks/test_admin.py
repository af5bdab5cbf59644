"""Staff see subscriptions and deliveries (never secrets), re-enable subscriptions and send deliveries
again, through confirmation pages, audited."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import UserFactory
from tests.webhooks.test_delivery import make_delivery
from webhooks import signing
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)
SUBSCRIPTIONS = "/admin/webhooks/webhooksubscription/"
DELIVERIES = "/admin/webhooks/webhookdelivery/"


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def subscription(org):
    return WebhookSubscription.objects.create(
        organization=org, url="https://hooks.example.com/in", events=["*"], secret=signing.new_secret(),
        is_active=False, disabled_reason="The receiver answered 410 Gone.", consecutive_failures=7,
    )  # fmt: skip


@pytest.fixture
def active_subscription(org):
    return WebhookSubscription.objects.create(organization=org, url="https://ok.example.com/in", events=["*"],
                                              secret=signing.new_secret())  # fmt: skip


def act(client, url, action, *objects, confirm=False, **kwargs):
    data = {"action": action, "_selected_action": [obj.pk for obj in objects]}
    if confirm:
        data["post"] = "yes"
    return client.post(url, data, **kwargs)


def test_staff_see_subscriptions_and_deliveries_but_never_secrets(staff_client, subscription):
    delivery = make_delivery(subscription, status=DeliveryStatus.FAILED, response_body="nope")
    listing = staff_client.get(f"{SUBSCRIPTIONS}?is_active__exact=0").content.decode()
    assert "hooks.example.com" in listing and "410 Gone" in listing and "disabled" in listing
    detail = staff_client.get(f"{SUBSCRIPTIONS}{subscription.pk}/change/").content.decode()
    assert subscription.secret not in detail and "whsec_" not in detail
    assert f"{DELIVERIES}?subscription__id__exact={subscription.pk}" in detail
    deliveries = staff_client.get(f"{DELIVERIES}?status__exact=failed").content.decode()
    assert "job.completed" in deliveries
    page = staff_client.get(f"{DELIVERIES}{delivery.pk}/change/").content.decode()
    assert "nope" in page and delivery.message_id in page and "&quot;type&quot;: &quot;job.completed&quot;" in page
    assert staff_client.get(f"{DELIVERIES}add/").status_code == 403
    assert staff_client.get(f"{DELIVERIES}?subscription__id__exact={subscription.pk}").status_code == 200


def test_re_enabling_asks_for_confirmation_then_counts_and_audits(staff_client, subscription, active_subscription):
    page = act(staff_client, SUBSCRIPTIONS, "enable_subscriptions", subscription, active_subscription)
    text = page.content.decode()
    assert page.status_code == 200 and "Yes, I’m sure" in text and "already active" in text
    subscription.refresh_from_db()
    assert not subscription.is_active
    response = act(staff_client, SUBSCRIPTIONS, "enable_subscriptions", subscription, active_subscription,
                   confirm=True, follow=True)  # fmt: skip
    text = response.content.decode()
    assert "Re-enabled 1 webhook subscription." in text
    assert "Skipped 1: https://ok.example.com/in: already active" in text
    subscription.refresh_from_db()
    assert subscription.is_active and subscription.disabled_reason == "" and subscription.consecutive_failures == 0
    record = AuditLog.objects.get(action="admin.webhooks.enable")
    assert (record.actor_kind, record.resource_id) == ("staff", str(subscription.pk))
    assert record.request_details["disabled_reason"] == "The receiver answered 410 Gone."


def test_the_deliveries_list_reads_a_bounded_number_of_rows(staff_client, subscription, django_assert_num_queries):
    delivery = make_delivery(subscription, status=DeliveryStatus.FAILED)
    with django_assert_num_queries(5):  # session, user, capped count, the page, the organizations' filter
        assert staff_client.get(DELIVERIES).status_code == 200
    page = staff_client.get(f"{DELIVERIES}?q={str(delivery.pk)[:8]}").content.decode()
    assert f"{delivery.pk}/change/" in page  # found by its id, as lists show it
    assert staff_client.get(f"{DELIVERIES}?created_at__year=9999")["Location"].endswith("?e=1")


def test_a_delivery_waiting_to_be_sent_is_not_sent_twice(staff_client, subscription):
    waiting = make_delivery(subscription, status=DeliveryStatus.PENDING, next_attempt_at=timezone.now())
    page = act(staff_client, DELIVERIES, "redeliver_deliveries", waiting).content.decode()
    assert "waiting to be sent" in page
    response = act(staff_client, DELIVERIES, "redeliver_deliveries", waiting, confirm=True, follow=True)
    assert "Requeued 0 webhook deliveries." in response.content.decode()
    assert not AuditLog.objects.filter(action="admin.webhooks.redeliver").exists()


def test_redelivering_asks_for_confirmation_then_counts_and_audits(staff_client, subscription):
    failed = make_delivery(subscription, status=DeliveryStatus.FAILED)
    succeeded = make_delivery(subscription, status=DeliveryStatus.SUCCEEDED, delivered_at=timezone.now())
    page = act(staff_client, DELIVERIES, "redeliver_deliveries", failed, succeeded)
    assert page.status_code == 200 and "Yes, I’m sure" in page.content.decode()
    failed.refresh_from_db()
    assert failed.status == DeliveryStatus.FAILED
    response = act(staff_client, DELIVERIES, "redeliver_deliveries", failed, succeeded, confirm=True, follow=True)
    assert "Requeued 2 webhook deliveries." in response.content.decode()
    for delivery in (failed, succeeded):
        message_id = delivery.message_id
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.PENDING and delivery.message_id == message_id
        assert delivery.delivered_at is None
    records = AuditLog.objects.filter(action="admin.webhooks.redeliver")
    assert {r.resource_id for r in records} == {str(failed.pk), str(succeeded.pk)}
    assert {r.request_details["status_before"] for r in records} == {"failed", "succeeded"}


def test_the_response_excerpt_is_escaped_and_truncated(staff_client, subscription):
    body = "<script>alert(1)</script>" + " filler" * 250
    delivery = make_delivery(subscription, status=DeliveryStatus.FAILED, response_status=500, response_body=body)
    listing = staff_client.get(DELIVERIES).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; filler" in listing and "<script>alert(1)" not in listing
    assert " filler" * 20 not in listing and "…" in listing  # an excerpt, not the whole body
    page = staff_client.get(f"{DELIVERIES}{delivery.pk}/change/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page


def test_deliveries_filter_by_status_event_type_organization_and_date(staff_client, subscription, other_org):
    make_delivery(subscription, status=DeliveryStatus.FAILED, url="https://one.example.com/a")
    pipeline = make_delivery(subscription, status=DeliveryStatus.SUCCEEDED, url="https://two.example.com/b")
    WebhookDelivery.objects.filter(pk=pipeline.pk).update(event_type="pipeline.updated")
    old = make_delivery(subscription, status=DeliveryStatus.FAILED, url="https://three.example.com/c")
    WebhookDelivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    other = WebhookSubscription.objects.create(organization=other_org, url="https://four.example.com/d",
                                               events=["*"], secret=signing.new_secret())  # fmt: skip
    make_delivery(other, status=DeliveryStatus.FAILED)

    def hosts(query):
        text = staff_client.get(f"{DELIVERIES}{query}").content.decode()
        return [host for host in ("one", "two", "three", "four") if f"https://{host}.example.com" in text]

    assert hosts("") == ["one", "two", "three", "four"]
    assert hosts("?status__exact=failed") == ["one", "three", "four"]
    assert hosts("?event_type=pipeline.updated") == ["two"]
    assert hosts(f"?organization__id__exact={other_org.pk}") == ["four"]
    week_ago = (timezone.now() - timedelta(days=7)).date().isoformat()
    assert hosts(f"?created_at__gte={week_ago}+00:00:00%2B00:00") == ["one", "two", "four"]
    assert "pipeline.updated" in staff_client.get(DELIVERIES).content.decode()  # offered as a filter


def test_the_actions_need_a_csrf_token(subscription):
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    delivery = make_delivery(subscription, status=DeliveryStatus.FAILED)
    assert act(client, SUBSCRIPTIONS, "enable_subscriptions", subscription, confirm=True).status_code == 403
    assert act(client, DELIVERIES, "redeliver_deliveries", delivery, confirm=True).status_code == 403
    subscription.refresh_from_db()
    delivery.refresh_from_db()
    assert not subscription.is_active and delivery.status == DeliveryStatus.FAILED


def test_staff_without_the_change_permission_cannot_run_the_actions(client, subscription):
    client.force_login(UserFactory(is_staff=True))
    assert client.get(SUBSCRIPTIONS).status_code == 403  # no view permission either
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_webhooksubscription"]))
    client.force_login(viewer)
    assert "enable_subscriptions" not in client.get(SUBSCRIPTIONS).content.decode()
    act(client, SUBSCRIPTIONS, "enable_subscriptions", subscription, confirm=True)
    subscription.refresh_from_db()
    assert not subscription.is_active


def test_people_who_are_not_staff_never_reach_it(client, subscription, owner):
    client.force_login(owner)
    assert client.get(SUBSCRIPTIONS).status_code == 302
    act(client, SUBSCRIPTIONS, "enable_subscriptions", subscription, confirm=True)
    subscription.refresh_from_db()
    assert not subscription.is_active
