from django.shortcuts import get_object_or_404
from django_filters import ChoiceFilter
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import roles
from pipeline_project.lib.filters import FilterSet
from pipeline_project.lib.pagination import CursorPagination
from webhooks import selectors, services
from webhooks.api.serializers import (
    DeliverySerializer,
    QueuedSerializer,
    SecretSerializer,
    SubscriptionCreatedSerializer,
    SubscriptionCreateSerializer,
    SubscriptionSerializer,
)
from webhooks.delivery import delivery_redeliver
from webhooks.events import EVENT_TYPES
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

UUID = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
EXAMPLE = {"url": "https://example.com/hooks/documents", "events": ["job.completed", "job.failed"],
           "description": "Our document inbox"}  # fmt: skip


class DeliveryFilter(FilterSet):
    status = ChoiceFilter(choices=DeliveryStatus.choices)
    event_type = ChoiceFilter(choices=[(name, name) for name in EVENT_TYPES])

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type"]


@extend_schema(tags=["webhooks"])
class WebhookViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Webhook subscriptions of the caller's organization, and their deliveries."""

    required_permission = roles.WEBHOOKS_MANAGE
    serializer_class = SubscriptionSerializer
    queryset = WebhookSubscription.objects.none()
    lookup_value_regex = UUID
    cursor_ordering = ("-created_at", "-id")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.subscription_queryset(principal=self.request.auth)

    @extend_schema(summary="List webhook subscriptions")
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Get a webhook subscription")
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Subscribe to events",
        description="The answer holds the signing `secret`, shown only here (and on rotation). Messages follow "
        "Standard Webhooks: verify `webhook-signature` with any of its libraries.",
        request=SubscriptionCreateSerializer,
        responses={201: SubscriptionCreatedSerializer},
        examples=[OpenApiExample("Completed and failed jobs", value=EXAMPLE, request_only=True)],
    )
    def create(self, request):
        serializer = SubscriptionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription = services.subscription_create(principal=request.auth, **serializer.validated_data)
        data = {**SubscriptionSerializer(subscription).data, "secret": subscription.secret}
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a webhook subscription",
        description="`is_active: true` re-enables a subscription that was disabled (its reason is cleared).",
    )
    def partial_update(self, request, pk=None):
        subscription = self.get_object()
        serializer = SubscriptionSerializer(subscription, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        subscription = services.subscription_update(subscription=subscription, **serializer.validated_data)
        return Response(SubscriptionSerializer(subscription).data)

    @extend_schema(summary="Delete a webhook subscription", description="Its deliveries' history goes with it.")
    def destroy(self, request, *args, **kwargs):
        services.subscription_delete(subscription=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Rotate a subscription's secret",
        description="The old secret keeps signing beside the new one for WEBHOOK_SECRET_ROTATION_OVERLAP "
        "(default 24 h): messages then carry two signatures.",
        request=None,
        responses={200: SecretSerializer},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        return Response({"secret": services.secret_rotate(self.get_object())})

    @extend_schema(
        summary="Send a test message",
        description="A `webhook.test` message, delivered like any other (see its deliveries).",
        request=None,
        responses={202: QueuedSerializer},
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        return _queued(services.subscription_test(subscription=self.get_object()))

    @extend_schema(
        summary="List a subscription's deliveries",
        description="Newest first.",
        parameters=[
            OpenApiParameter("status", str, enum=DeliveryStatus.values),
            OpenApiParameter("event_type", str, enum=[*EVENT_TYPES]),
        ],
        responses=DeliverySerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=CursorPagination, filter_backends=[])
    def deliveries(self, request, pk=None):
        deliveries = selectors.delivery_queryset(subscription=self.get_object())
        filtered = DeliveryFilter(request.query_params, queryset=deliveries)
        if not filtered.is_valid():
            raise ValidationError(filtered.errors)
        page = self.paginate_queryset(filtered.qs)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    def _delivery(self, delivery_id) -> WebhookDelivery:
        return get_object_or_404(selectors.delivery_queryset(subscription=self.get_object()), pk=delivery_id)

    @extend_schema(
        summary="Get a delivery",
        parameters=[OpenApiParameter("delivery_id", str, OpenApiParameter.PATH, pattern=f"^{UUID}$")],
        responses={200: DeliverySerializer},
    )
    @action(detail=True, methods=["get"], url_path=f"deliveries/(?P<delivery_id>{UUID})", filter_backends=[])
    def delivery(self, request, pk=None, delivery_id=None):
        return Response(DeliverySerializer(self._delivery(delivery_id)).data)

    @extend_schema(
        summary="Redeliver a message",
        description="The same message (same `webhook-id` and body) sent again as a new attempt.",
        parameters=[OpenApiParameter("delivery_id", str, OpenApiParameter.PATH, pattern=f"^{UUID}$")],
        request=None,
        responses={202: QueuedSerializer},
    )
    @action(detail=True, methods=["post"], url_path=f"deliveries/(?P<delivery_id>{UUID})/redeliver",
            filter_backends=[])  # fmt: skip
    def redeliver(self, request, pk=None, delivery_id=None):
        return _queued(delivery_redeliver(delivery=self._delivery(delivery_id)))


def _queued(delivery: WebhookDelivery) -> Response:
    return Response({"delivery_id": delivery.id, "message_id": delivery.message_id}, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["webhooks"])
class DefaultSecretView(APIView):
    """The secret signing the messages sent to jobs' own `webhook_url`."""

    required_permission = roles.WEBHOOKS_MANAGE

    @extend_schema(summary="Get the default webhook secret", responses={200: SecretSerializer})
    def get(self, request):
        return Response({"secret": services.default_secret(organization=request.auth.organization).secret})


@extend_schema(tags=["webhooks"])
class DefaultSecretRotateView(APIView):
    required_permission = roles.WEBHOOKS_MANAGE

    @extend_schema(
        summary="Rotate the default webhook secret",
        description="The old secret keeps signing beside the new one for WEBHOOK_SECRET_ROTATION_OVERLAP.",
        request=None,
        responses={200: SecretSerializer},
    )
    def post(self, request):
        holder = services.default_secret(organization=request.auth.organization)
        return Response({"secret": services.secret_rotate(holder)})
