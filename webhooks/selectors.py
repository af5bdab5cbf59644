from django.db.models import QuerySet

from accounts.principal import Principal
from webhooks.models import WebhookDelivery, WebhookSubscription


def subscription_queryset(*, principal: Principal) -> QuerySet[WebhookSubscription]:
    """The caller's organization's subscriptions: nothing else is ever visible (others' answer 404)."""
    return WebhookSubscription.objects.filter(organization_id=principal.organization.pk)


def delivery_queryset(*, subscription: WebhookSubscription) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(subscription=subscription)
