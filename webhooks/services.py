"""Writes on subscriptions and signing secrets (the API's); deliveries are written by the delivery
services."""

from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.principal import Principal
from pipeline_project.lib.batches import in_locked_batches
from pipeline_project.lib.events import Event, announce
from webhooks import queueing, signing
from webhooks.models import (
    DeliveryStatus,
    OrganizationWebhookSecret,
    SigningSecrets,
    WebhookDelivery,
    WebhookSubscription,
)


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


FINISHED = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)  # never the open ones (pending, retrying)


def deliveries_prunable(*, cutoff):
    """Finished deliveries created before ``cutoff``."""
    return WebhookDelivery.objects.filter(status__in=FINISHED, created_at__lt=cutoff).order_by()


def deliveries_prune(*, older_than: int, dry_run: bool = False, batch_size: int = 1000, progress=None) -> int:
    """Deletes finished deliveries (succeeded or failed) created more than ``older_than`` days ago,
    ``batch_size`` per transaction; returns how many (with ``dry_run``: how many it would, changing
    nothing). Each batch announces one ``webhook.deliveries_pruned`` per organization (the audit
    trail's system action) in its transaction. Safe to run twice at once: a batch is claimed with
    ``FOR UPDATE SKIP LOCKED``. ``progress(n)`` after each batch."""
    cutoff = timezone.now() - timedelta(days=older_than)
    if dry_run:
        return deliveries_prunable(cutoff=cutoff).count()

    def prune(batch: list[tuple]) -> None:
        WebhookDelivery.objects.filter(pk__in=[pk for pk, _ in batch], status__in=FINISHED).delete()
        by_organization = Counter(organization_id for _, organization_id in batch)
        announce(
            Event(type="webhook.deliveries_pruned", organization_id=organization_id,
                  details={"count": count, "cutoff": cutoff.isoformat(), "older_than_days": older_than})
            for organization_id, count in by_organization.items()
        )  # fmt: skip

    return in_locked_batches(deliveries_prunable(cutoff=cutoff), ["pk", "organization_id"], prune,
                             batch_size=batch_size, progress=progress)  # fmt: skip
