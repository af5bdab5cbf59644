import pytest

from tests.factories import UserFactory
from tests.webhooks.test_delivery import make_delivery
from webhooks import signing
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def subscription(org):
    return WebhookSubscription.objects.create(
        organization=org, url="https://hooks.example.com/in", events=["*"], secret=signing.new_secret(),
        is_active=False, disabled_reason="The receiver answered 410 Gone.",
    )  # fmt: skip


def test_staff_see_subscriptions_and_deliveries_but_never_secrets(staff_client, subscription):
    delivery = make_delivery(subscription, status=DeliveryStatus.FAILED, response_body="nope")
    listing = staff_client.get("/admin/webhooks/webhooksubscription/?is_active__exact=0").content.decode()
    assert "hooks.example.com" in listing and "410 Gone" in listing
    detail = staff_client.get(f"/admin/webhooks/webhooksubscription/{subscription.pk}/change/").content.decode()
    assert subscription.secret not in detail and "whsec_" not in detail
    deliveries = staff_client.get("/admin/webhooks/webhookdelivery/?status__exact=failed").content.decode()
    assert "job.completed" in deliveries
    page = staff_client.get(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert "nope" in page and delivery.message_id in page
    assert staff_client.get("/admin/webhooks/webhookdelivery/add/").status_code == 403


def test_staff_re_enable_subscriptions_and_redeliver(staff_client, subscription):
    delivery = make_delivery(subscription, status=DeliveryStatus.FAILED)
    staff_client.post("/admin/webhooks/webhooksubscription/",
                      {"action": "enable_subscriptions", "_selected_action": [subscription.pk]})  # fmt: skip
    subscription.refresh_from_db()
    assert subscription.is_active and subscription.disabled_reason == ""
    staff_client.post("/admin/webhooks/webhookdelivery/",
                      {"action": "redeliver_deliveries", "_selected_action": [delivery.pk]})  # fmt: skip
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.message_id == WebhookDelivery.objects.get().message_id


def test_staff_without_the_change_permission_cannot_run_the_actions(client, subscription):
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/admin/webhooks/webhooksubscription/").status_code == 403  # no view permission either
