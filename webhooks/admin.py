"""Staff views of webhook subscriptions and deliveries. Secrets are never shown; subscriptions
change through the API (which checks URLs and shows secrets once). Staff can re-enable a
subscription and send deliveries again, through the same services as the API, each after a
confirmation page (``pipeline_project.lib.admin.confirmed_action``) and audited."""

import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from audit.services import audit_staff_action
from pipeline_project.lib.admin import LargeTableAdmin, ReadOnlyAdmin, confirmed_action
from webhooks.delivery import delivery_redeliver
from webhooks.events import EVENT_TYPES
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from webhooks.services import subscription_update

EXCERPT_CHARS = 80  # of a receiver's answer, in the deliveries' list


def _changelist(model, **query) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{'&'.join(f'{key}={value}' for key, value in query.items())}"


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["url", "organization", "events", "state", "disabled_reason", "consecutive_failures",
                    "created_at"]  # fmt: skip
    list_filter = ["is_active", "organization"]
    search_fields = ["=id", "url", "description"]
    list_select_related = ["organization"]
    fields = ["id", "organization", "url", "events", "description", "state", "disabled_at", "disabled_reason",
              "failing_since", "consecutive_failures", "previous_secret_expires_at", "created_by", "created_by_key",
              "created_at", "updated_at", "deliveries"]  # fmt: skip
    readonly_fields = fields
    actions = ["enable_subscriptions"]

    @admin.display(description="state", ordering="is_active")
    def state(self, subscription):
        if subscription.is_active:
            return format_html('<span style="color:{}">{}</span>', "#2e7d32", "active")
        return format_html('<strong style="color:{}">{}</strong>', "#b3261e", "disabled")

    @admin.display(description="deliveries")
    def deliveries(self, subscription):
        return format_html('<a href="{}">Deliveries of this subscription</a>',
                           _changelist(WebhookDelivery, subscription__id__exact=subscription.pk))  # fmt: skip

    @admin.action(description="Re-enable the selected subscriptions", permissions=["manage"])
    def enable_subscriptions(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset.select_related("organization"),
            title="Re-enable webhook subscriptions",
            verb="re-enable",
            past="re-enabled",
            note="Their events are delivered again from the next one on; their count of failures starts from zero.",
            skip_reason=lambda subscription: "already active" if subscription.is_active else None,
            perform=lambda subscription: self._enable(request, subscription),
        )

    def _enable(self, request, subscription: WebhookSubscription) -> None:
        reason = subscription.disabled_reason
        subscription_update(subscription=subscription, is_active=True)
        audit_staff_action(request=request, action="admin.webhooks.enable", obj=subscription,
                           details={"url": subscription.url, "disabled_reason": reason})  # fmt: skip


class EventTypeFilter(admin.SimpleListFilter):
    """The known event types (no DISTINCT over every delivery to list them)."""

    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        return [(event_type, event_type) for event_type in EVENT_TYPES]

    def queryset(self, request, queryset):
        return queryset.filter(event_type=self.value()) if self.value() else queryset


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = ["event_type", "url", "organization", "status", "attempts", "response_status", "response_excerpt",
                    "created_at", "delivered_at"]  # fmt: skip
    list_filter = ["status", EventTypeFilter, "organization", "created_at"]
    search_fields = ["=message_id", "url"]
    search_by_id = True
    list_select_related = ["organization"]
    date_hierarchy = "created_at"  # drawn without reading rows (LargeTableAdmin)
    sortable_by = ["created_at"]  # the order an index serves (webhook_delivery_created)
    fields = ["id", "message_id", "organization", "subscription", "url", "event_type", "status", "attempts",
              "next_attempt_at", "created_at", "delivered_at", "duration_ms", "last_error", "response_status",
              "response", "payload_json"]  # fmt: skip
    readonly_fields = fields
    actions = ["redeliver_deliveries"]

    @admin.display(description="response")
    def response_excerpt(self, delivery):
        """The start of the receiver's answer, as text (escaped by the admin)."""
        text = " ".join(delivery.response_body.split())
        return Truncator(text).chars(EXCERPT_CHARS) if text else "-"

    @admin.display(description="response body (first 2 KB)")
    def response(self, delivery):
        if not delivery.response_body:
            return "-"
        return format_html('<pre style="margin:0;white-space:pre-wrap;max-height:24em;overflow:auto">{}</pre>',
                           delivery.response_body)  # fmt: skip

    @admin.display(description="payload")
    def payload_json(self, delivery):
        return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>',
                           json.dumps(delivery.payload, indent=2, ensure_ascii=False))  # fmt: skip

    @admin.action(description="Send the selected deliveries again (same message id)", permissions=["manage"])
    def redeliver_deliveries(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset.select_related("organization"),
            title="Send webhook deliveries again",
            verb="redeliver",
            past="requeued",
            note="Each message is sent again with its webhook-id, payload and signature scheme unchanged: "
            "receivers that deduplicate on webhook-id ignore one they already processed.",
            skip_reason=lambda delivery: "waiting to be sent" if delivery.status == DeliveryStatus.PENDING else None,
            perform=lambda delivery: self._redeliver(request, delivery),
        )

    def _redeliver(self, request, delivery: WebhookDelivery) -> None:
        delivery_redeliver(delivery=delivery)
        audit_staff_action(request=request, action="admin.webhooks.redeliver", obj=delivery,
                           details={"event_type": delivery.event_type, "message_id": delivery.message_id,
                                    "status_before": delivery.status})  # fmt: skip
