from rest_framework import serializers

from pipeline_project.lib import fields
from webhooks.events import ALL, EVENT_TYPES
from webhooks.models import WebhookDelivery, WebhookSubscription

EVENTS_HELP = (
    f'Event types to receive, or ["*"] for all: {", ".join(EVENT_TYPES)}. Each message is a signed POST'
    ' (Standard Webhooks) of {"type", "timestamp", "data"}, data being the job or pipeline as GET shows it.'
)


class EventsField(serializers.ListField):
    child = fields.ChoiceField(
        choices=[*EVENT_TYPES, ALL],
        error_messages={"invalid_choice": f'"{{input}}" is not an event type. Valid: *, {", ".join(EVENT_TYPES)}.'},
    )

    def __init__(self, **kwargs):
        super().__init__(min_length=1, max_length=len(EVENT_TYPES) + 1, help_text=EVENTS_HELP, **kwargs)

    def to_internal_value(self, data):
        events = list(dict.fromkeys(super().to_internal_value(data)))  # in order, once each
        return [ALL] if ALL in events else events


class SubscriptionSerializer(fields.ModelSerializer):
    url = fields.URLField(max_length=2000, validators=[fields.public_url], help_text="http(s), public hosts only.")
    events = EventsField()
    description = fields.CharField(required=False, allow_blank=True, max_length=500, default="")
    is_active = fields.BooleanField(required=False, help_text="false pauses deliveries; true re-enables.")

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "description", "is_active", "disabled_at", "disabled_reason",
                  "consecutive_failures", "created_at", "updated_at"]  # fmt: skip
        read_only_fields = ["id", "disabled_at", "disabled_reason", "consecutive_failures", "created_at", "updated_at"]


class SubscriptionCreateSerializer(SubscriptionSerializer):
    class Meta(SubscriptionSerializer.Meta):
        fields = ["url", "events", "description"]
        read_only_fields = []


class SubscriptionCreatedSerializer(SubscriptionSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The signing secret (whsec_...). Shown only here and on rotation: store it now."
    )

    class Meta(SubscriptionSerializer.Meta):
        fields = [*SubscriptionSerializer.Meta.fields, "secret"]


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(read_only=True, help_text="whsec_ + base64: verify webhook-signature with it.")


class DeliverySerializer(serializers.ModelSerializer):
    subscription_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "subscription_id", "url", "event_type", "message_id", "status", "attempts",
                  "next_attempt_at", "last_error", "response_status", "response_body", "duration_ms",
                  "created_at", "delivered_at", "payload"]  # fmt: skip
        read_only_fields = fields


class QueuedSerializer(serializers.Serializer):
    delivery_id = serializers.UUIDField(read_only=True)
    message_id = serializers.CharField(read_only=True)
