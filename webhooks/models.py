"""Webhook subscriptions and the deliveries of their messages (Standard Webhooks, see signing.py).

A delivery row is one message to one URL: written in the same transaction as the change that
caused it (the outbox), then sent in batches by RQ jobs on the ``webhooks`` queue
(``webhooks/delivery.py``), retried on a schedule until it succeeds or fails for good. Its
``message_id`` stays the same across retries and redeliveries, so receivers can deduplicate on
``webhook-id``.
"""

import uuid

from django.db import models

from accounts.models import ApiKey, Organization, User
from pipeline_project.lib.crypto import EncryptedTextField


class SigningSecrets(models.Model):
    """A signing secret (encrypted at rest) and, during a rotation, the previous one, which keeps
    signing beside it until ``previous_secret_expires_at``."""

    secret = EncryptedTextField()
    previous_secret = EncryptedTextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class WebhookSubscription(SigningSecrets):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_subscriptions")
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text='Event types, or ["*"] for all.')
    description = models.CharField(max_length=500, blank=True)
    is_active = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True, help_text="Start of the current run of failures.")
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "webhook_subscriptions"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at", "-id"], name="webhook_sub_org_created")]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return self.is_active and ("*" in self.events or event_type in self.events)


class OrganizationWebhookSecret(SigningSecrets):
    """The secret signing the messages sent to jobs' own ``webhook_url`` (one per organization)."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, primary_key=True, related_name="webhook_secret"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "webhook_default_secrets"

    def __str__(self) -> str:
        return f"default webhook secret of {self.organization_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_deliveries")
    subscription = models.ForeignKey(
        WebhookSubscription, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries",
        help_text="None: a job's own webhook_url.",
    )  # fmt: skip
    url = models.URLField(max_length=2000)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(help_text='{"type", "timestamp", "data"}: the body sent.')
    message_id = models.CharField(max_length=64, help_text="webhook-id: the same for every attempt and redelivery.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.CharField(max_length=2048, blank=True, help_text="The first 2 KB of the last answer.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "webhook_deliveries"
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["subscription", "-created_at", "-id"], name="webhook_delivery_sub_created"),
            models.Index(fields=["-created_at", "-id"], name="webhook_delivery_created"),  # staff's list, pruning
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["message_id"], name="webhook_delivery_message"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.url} ({self.status})"
