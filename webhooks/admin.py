"""Staff views of webhook subscriptions and deliveries. Secrets are never shown; subscriptions
change through the API (which checks URLs and shows secrets once). Staff can re-enable a
subscription and send deliveries again, through the same services as the API."""

from django.contrib import admin, messages
from django.db import transaction

from audit.services import audit_staff_action
from pipeline_project.lib.admin import ReadOnlyAdmin
from webhooks.delivery import delivery_redeliver
from webhooks.models import WebhookDelivery, WebhookSubscription
from webhooks.services import subscription_update


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["url", "organization", "events", "is_active", "disabled_reason", "consecutive_failures",
                    "created_at"]  # fmt: skip
    list_filter = ["is_active", "organization"]
    search_fields = ["=id", "url", "description"]
    list_select_related = ["organization"]
    fields = ["id", "organization", "url", "events", "description", "is_active", "disabled_at", "disabled_reason",
              "failing_since", "consecutive_failures", "previous_secret_expires_at", "created_by", "created_by_key",
              "created_at", "updated_at"]  # fmt: skip
    readonly_fields = fields
    actions = ["enable_subscriptions"]

    @admin.action(description="Re-enable the selected subscriptions", permissions=["manage"])
    def enable_subscriptions(self, request, queryset):
        disabled = list(queryset.filter(is_active=False))
        for subscription in disabled:
            with transaction.atomic():
                subscription_update(subscription=subscription, is_active=True)
                audit_staff_action(request=request, action="admin.webhooks.enable", obj=subscription)
        self.message_user(request, f"{len(disabled)} re-enabled.", messages.SUCCESS)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["event_type", "url", "organization", "status", "attempts", "response_status", "created_at",
                    "delivered_at"]  # fmt: skip
    list_filter = ["status", "event_type", "organization"]
    search_fields = ["=id", "=message_id", "url"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
    actions = ["redeliver_deliveries"]

    @admin.action(description="Send the selected deliveries again (same message id)", permissions=["manage"])
    def redeliver_deliveries(self, request, queryset):
        count = 0
        for delivery in queryset:
            with transaction.atomic():
                delivery_redeliver(delivery=delivery)
                audit_staff_action(request=request, action="admin.webhooks.redeliver", obj=delivery)
            count += 1
        self.message_user(request, f"{count} queued for delivery again.", messages.SUCCESS)
