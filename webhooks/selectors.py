from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from accounts.principal import Principal
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription


def subscription_queryset(*, principal: Principal) -> QuerySet[WebhookSubscription]:
    """The caller's organization's subscriptions: nothing else is ever visible (others' answer 404)."""
    return WebhookSubscription.objects.filter(organization_id=principal.organization.pk)


def delivery_queryset(*, subscription: WebhookSubscription) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(subscription=subscription)


_CLOCK_SLACK = timedelta(minutes=1)  # web and worker hosts' clocks


def job_deliveries(*, job, limit: int = 20) -> QuerySet[WebhookDelivery]:
    """The deliveries of ``job``'s events (``job.*`` messages carry the job as ``data``), newest
    first, at most ``limit``: among the organization's deliveries (its index) those written while
    the job lived (the outbox writes them with each change; a redelivery reuses its row)."""
    until = (job.completed_at or timezone.now()) + _CLOCK_SLACK
    return (
        WebhookDelivery.objects.filter(
            organization_id=job.organization_id,
            created_at__gte=job.created_at - _CLOCK_SLACK,
            created_at__lte=until,
            event_type__startswith="job.",
            payload__data__id=str(job.pk),
        )
        .select_related("subscription")
        .order_by("-created_at", "-id")[:limit]
    )


def recent_failed_deliveries(*, since, limit: int = 10) -> QuerySet[WebhookDelivery]:
    """Deliveries of any organization that failed for good, created since ``since``, newest first."""
    return (
        WebhookDelivery.objects.filter(status=DeliveryStatus.FAILED, created_at__gte=since)
        .select_related("organization")
        .order_by("-created_at", "-id")[:limit]
    )
