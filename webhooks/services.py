"""Writes on subscriptions and signing secrets (the API's); deliveries are written by the delivery
services."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.principal import Principal
from webhooks import queueing, signing
from webhooks.models import OrganizationWebhookSecret, SigningSecrets, WebhookDelivery, WebhookSubscription


def subscription_create(*, principal: Principal, url: str, events: list[str], description: str = ""
                        ) -> WebhookSubscription:  # fmt: skip
    """A new subscription of the caller's organization with a new secret (on the instance, in
    clear, to show once)."""
    return WebhookSubscription.objects.create(
        organization=principal.organization,
        url=url,
        events=events,
        description=description,
        secret=signing.new_secret(),
        created_by=principal.user,
        created_by_key=principal.api_key,
    )


def subscription_update(*, subscription: WebhookSubscription, **changes) -> WebhookSubscription:
    """Changes url, events, description or is_active; re-enabling a disabled subscription clears
    its disabled state and its run of failures."""
    for field, value in changes.items():
        setattr(subscription, field, value)
    if changes.get("is_active") is True:
        subscription.disabled_at, subscription.disabled_reason = None, ""
        subscription.failing_since, subscription.consecutive_failures = None, 0
    subscription.save()
    return subscription


def subscription_delete(*, subscription: WebhookSubscription) -> None:
    """Deletes the subscription and its deliveries' history."""
    subscription.delete()


def secret_rotate(holder: SigningSecrets) -> str:
    """A new secret for ``holder``; the current one keeps signing beside it for
    ``WEBHOOK_SECRET_ROTATION_OVERLAP``. Returns the new secret."""
    holder.previous_secret = holder.secret
    holder.previous_secret_expires_at = timezone.now() + timedelta(seconds=settings.WEBHOOK_SECRET_ROTATION_OVERLAP)
    holder.secret = signing.new_secret()
    holder.save()
    return holder.secret


def default_secret(*, organization: Organization) -> OrganizationWebhookSecret:
    """The secret signing the messages sent to jobs' own ``webhook_url``, created on first use."""
    holder, _ = OrganizationWebhookSecret.objects.get_or_create(
        organization=organization, defaults={"secret": signing.new_secret()}
    )
    return holder


def subscription_test(*, subscription: WebhookSubscription) -> WebhookDelivery:
    """Sends a ``webhook.test`` message to the subscription (whatever events it asked for)."""
    now = timezone.now()
    payload = {
        "type": "webhook.test",
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": {"subscription_id": str(subscription.id), "url": subscription.url},
    }
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            organization_id=subscription.organization_id,
            subscription=subscription,
            url=subscription.url,
            event_type="webhook.test",
            payload=payload,
            message_id=signing.new_message_id(),
            next_attempt_at=now,
        )
        queueing.kick_on_commit()
    return delivery
