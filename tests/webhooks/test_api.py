"""The webhooks API: subscriptions, secrets, test messages, deliveries; organization-scoped."""

import pytest

from webhooks.models import DeliveryStatus, OrganizationWebhookSecret, WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db
HOOKS = "/api/v1/webhooks"
URL = "https://hooks.example.com/documents"


def subscribe(client, **data):
    response = client.post(HOOKS, {"url": URL, "events": ["job.completed"], **data}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_subscription_is_created_with_a_secret_shown_once(as_owner):
    created = subscribe(as_owner, description="inbox")
    assert created["secret"].startswith("whsec_") and created["events"] == ["job.completed"]
    assert created["is_active"] is True and created["description"] == "inbox"
    shown = as_owner.get(f"{HOOKS}/{created['id']}").json()
    assert "secret" not in shown and shown["url"] == URL
    assert as_owner.get(HOOKS).json()["total"] == 1


def test_secrets_are_stored_encrypted(as_owner):
    created = subscribe(as_owner)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM webhook_subscriptions")
        (stored,) = cursor.fetchone()
    assert created["secret"] not in stored
    assert WebhookSubscription.objects.get().secret == created["secret"]


@pytest.mark.parametrize(
    "events, error",
    [(["job.done"], '"job.done" is not an event type'), ([], "at least 1"), ("job.completed", "list")],
)
def test_bad_events_are_a_400_naming_the_valid_ones(as_owner, events, error):
    response = as_owner.post(HOOKS, {"url": URL, "events": events}, format="json")
    assert response.status_code == 400
    assert error in str(response.json()["error"]["details"])


def test_all_events_and_duplicates(as_owner):
    assert subscribe(as_owner, events=["job.failed", "*"])["events"] == ["*"]
    assert subscribe(as_owner, events=["job.failed", "job.failed"])["events"] == ["job.failed"]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/hook", "http://localhost/hook", "http://[::1]/hook", "http://10.0.0.1/hook",
     "http://169.254.169.254/latest", "http://2130706433/", "http://0x7f000001/", "ftp://example.com/x"],
)  # fmt: skip
def test_private_or_odd_urls_are_refused(as_owner, url):
    response = as_owner.post(HOOKS, {"url": url, "events": ["*"]}, format="json")
    assert response.status_code == 400 and "url" in response.json()["error"]["details"]


def test_update_pauses_and_re_enables(as_owner):
    created = subscribe(as_owner)
    WebhookSubscription.objects.filter(pk=created["id"]).update(is_active=False, disabled_reason="410 Gone")
    response = as_owner.patch(f"{HOOKS}/{created['id']}", {"is_active": True, "events": ["*"]}, format="json")
    assert response.status_code == 200
    assert response.json()["is_active"] is True and response.json()["disabled_reason"] == ""
    assert response.json()["events"] == ["*"]


def test_rotation_keeps_the_old_secret_for_the_overlap(as_owner):
    created = subscribe(as_owner)
    rotated = as_owner.post(f"{HOOKS}/{created['id']}/rotate-secret").json()["secret"]
    subscription = WebhookSubscription.objects.get()
    assert rotated != created["secret"] and subscription.secret == rotated
    assert subscription.previous_secret == created["secret"] and subscription.previous_secret_expires_at


def test_a_test_message_is_queued_as_a_delivery(as_owner):
    created = subscribe(as_owner)
    response = as_owner.post(f"{HOOKS}/{created['id']}/test")
    assert response.status_code == 202
    delivery = WebhookDelivery.objects.get(pk=response.json()["delivery_id"])
    assert delivery.event_type == "webhook.test" and delivery.status == DeliveryStatus.PENDING
    assert delivery.message_id == response.json()["message_id"] and delivery.message_id.startswith("msg_")
    listed = as_owner.get(f"{HOOKS}/{created['id']}/deliveries").json()["items"]
    assert [item["id"] for item in listed] == [str(delivery.id)]
    assert as_owner.get(f"{HOOKS}/{created['id']}/deliveries?status=failed").json()["items"] == []
    assert as_owner.get(f"{HOOKS}/{created['id']}/deliveries/{delivery.id}").json()["payload"]["type"] == "webhook.test"


def test_delete_removes_the_subscription(as_owner):
    created = subscribe(as_owner)
    assert as_owner.delete(f"{HOOKS}/{created['id']}").status_code == 204
    assert as_owner.get(f"{HOOKS}/{created['id']}").status_code == 404


def test_the_default_secret_is_created_once_and_rotates(as_owner):
    first = as_owner.get(f"{HOOKS}/default/secret").json()["secret"]
    assert first.startswith("whsec_") and as_owner.get(f"{HOOKS}/default/secret").json()["secret"] == first
    rotated = as_owner.post(f"{HOOKS}/default/secret/rotate").json()["secret"]
    holder = OrganizationWebhookSecret.objects.get()
    assert rotated != first and holder.secret == rotated and holder.previous_secret == first


def test_organizations_and_permissions(as_owner, as_outsider, as_member):
    created = subscribe(as_owner)
    assert as_outsider.get(f"{HOOKS}/{created['id']}").status_code == 404
    assert as_outsider.post(f"{HOOKS}/{created['id']}/rotate-secret").status_code == 404
    assert as_outsider.get(HOOKS).json()["total"] == 0
    assert as_member.get(HOOKS).status_code == 403  # webhooks:manage is an admin's
    assert as_owner.get(f"{HOOKS}/{created['id']}/deliveries/not-a-uuid").status_code == 404
