"""Sending deliveries: one attempt at a time, retried on a schedule, never two workers on one attempt.

An attempt is claimed in a short transaction (the row locked with ``SKIP LOCKED``, ``attempts``
incremented, ``next_attempt_at`` pushed past the attempt's longest possible duration: a lease),
sent with no transaction open, and its outcome written in a second transaction only if
``attempts`` is still the claimed number (the fencing token, as for jobs). A worker that dies
mid-attempt leaves a delivery that falls due again when its lease ends, and the recovery cron
(``webhooks/recovery.py``) enqueues it again.

Outcomes: 2xx delivered; 410 Gone fails the delivery and disables its subscription; an unsafe URL
(SSRF guard) fails at once; anything else (3xx, never followed; other 4xx; 429; 5xx; timeouts;
connection errors) is retried per ``WEBHOOK_RETRY_SCHEDULE`` (with jitter, honouring
``Retry-After``), then fails. A subscription failing continuously for ``WEBHOOK_DISABLE_AFTER``
is disabled.

This module holds every write of webhook rows made by delivery (services, keyword-only).
"""

import json
import logging
import random
import time
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pipeline_project.lib.ssrf import UnsafeURL, pinned_request
from webhooks import queueing, signing
from webhooks.models import (
    DeliveryStatus,
    SigningSecrets,
    WebhookDelivery,
    WebhookSubscription,
)
from webhooks.services import default_secret

logger = logging.getLogger(__name__)

OPEN = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
RESPONSE_EXCERPT = 2048  # bytes of the receiver's answer kept in ``response_body``
RETRY_AFTER_CAP = 86400  # seconds: a receiver cannot park a delivery for longer than a day
JITTER = 0.10
DUE_TOLERANCE = timedelta(seconds=1)  # an RQ scheduler a little ahead of this clock


def signing_secrets(holder: SigningSecrets) -> list[str]:
    """The holder's secret, then its previous one while the rotation overlap lasts."""
    secrets = [holder.secret]
    expires = holder.previous_secret_expires_at
    if holder.previous_secret and expires is not None and expires > timezone.now():
        secrets.append(holder.previous_secret)
    return secrets


def message_body(payload) -> bytes:
    """The exact bytes sent (and signed): the same on every attempt of a message."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def attempt_lease() -> timedelta:
    """How long a claimed attempt keeps its delivery from falling due again: longer than the RQ
    job timeout of a delivery (``queueing``: 4 x ``WEBHOOK_TIMEOUT``)."""
    return timedelta(seconds=settings.WEBHOOK_TIMEOUT * 4 + 30)


# --- Services: the writes of delivery rows --------------------------------------------------------


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Sends ``delivery``'s message again (same ``message_id``, same payload) as a new attempt, from
    any status. ``attempts`` keeps counting; ``delivered_at`` is cleared until it succeeds again."""
    with transaction.atomic():
        locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        locked.status = DeliveryStatus.PENDING
        locked.next_attempt_at = timezone.now()
        locked.delivered_at = None
        locked.save(update_fields=["status", "next_attempt_at", "delivered_at"])
        queueing.enqueue_on_commit(locked.pk, locked.attempts)
    return locked


def deliver(delivery_id) -> str | None:
    """One attempt of a due delivery; returns its status afterwards, or None if there was nothing to
    do (not due, finished, or being sent by another worker). Never raises for a receiver's fault."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(pk=delivery_id, status__in=OPEN)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + DUE_TOLERANCE))
            .first()
        )
        if delivery is None:
            return None
        subscription = delivery.subscription
        if subscription is not None and not subscription.is_active:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = "The subscription is disabled."
            delivery.save(update_fields=["status", "next_attempt_at", "last_error"])
            return delivery.status
        delivery.attempts += 1
        delivery.next_attempt_at = now + attempt_lease()
        delivery.save(update_fields=["attempts", "next_attempt_at"])
        holder = subscription if subscription is not None else default_secret(organization=delivery.organization)
        secrets = signing_secrets(holder)

    result = _send(delivery, secrets)
    return _record(delivery, result)


class _Result:
    def __init__(self):
        self.status: int | None = None
        self.body = ""
        self.error = ""
        self.retry_after: float | None = None
        self.unsafe = False
        self.duration_ms: int | None = None


def _send(delivery: WebhookDelivery, secrets: list[str]) -> _Result:
    result = _Result()
    body = message_body(delivery.payload)
    headers = signing.headers(secrets, delivery.message_id, int(time.time()), body)
    started = time.monotonic()
    try:
        response = pinned_request("POST", delivery.url, timeout=settings.WEBHOOK_TIMEOUT, body=body, headers=headers)
        try:
            result.status = response.status
            result.retry_after = _retry_after(response.headers.get("Retry-After"))
            excerpt = response.read(RESPONSE_EXCERPT)
            result.body = excerpt.decode("utf-8", "replace").replace("\x00", "")[:RESPONSE_EXCERPT]
            if 300 <= response.status < 400:
                result.error = f"HTTP {response.status}: redirects are not followed"
                location = response.headers.get("Location")
                if location:
                    result.error += f" (Location: {location[:500]})"
                result.error += "."
            elif not 200 <= response.status < 300:
                result.error = f"HTTP {response.status}."
        finally:
            response.close()
            response.release_conn()
    except UnsafeURL as exc:
        result.unsafe = True
        result.error = f"Unsafe URL: {exc}"
    except Exception as exc:  # timeouts, refused connections, TLS errors, malformed answers: the receiver's fault
        result.error = f"{type(exc).__name__}: {exc}"[:1000]
        if result.status is None:
            logger.info("webhook delivery %s attempt %s failed: %s", delivery.pk, delivery.attempts, result.error)
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP-date), capped; None if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(int(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - timezone.now()).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def retry_delay(attempts: int, retry_after: float | None = None) -> float | None:
    """Seconds before the next attempt after ``attempts`` attempts; None when the schedule is spent."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if attempts >= len(schedule):
        return None
    delay = schedule[attempts] * random.uniform(1 - JITTER, 1 + JITTER)
    return max(delay, retry_after or 0.0)


def _record(claimed: WebhookDelivery, result: _Result) -> str | None:
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .filter(pk=claimed.pk, attempts=claimed.attempts, status__in=OPEN)
            .first()
        )
        if delivery is None:
            logger.warning("webhook delivery %s: attempt %s lost its claim", claimed.pk, claimed.attempts)
            return None
        delivery.response_status = result.status
        delivery.response_body = result.body
        delivery.duration_ms = result.duration_ms
        delivery.last_error = result.error
        subscription = None
        if delivery.subscription_id is not None:
            subscription = WebhookSubscription.objects.select_for_update().get(pk=delivery.subscription_id)

        if result.status is not None and 200 <= result.status < 300:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            if subscription is not None and (subscription.failing_since or subscription.consecutive_failures):
                subscription.failing_since = None
                subscription.consecutive_failures = 0
                subscription.save(update_fields=["failing_since", "consecutive_failures", "updated_at"])
        else:
            delay = None
            if result.status == 410:
                if subscription is not None:
                    _disable(subscription, now, "The receiver answered 410 Gone.")
            elif not result.unsafe:
                delay = retry_delay(delivery.attempts, result.retry_after)
            if delay is None:
                delivery.status = DeliveryStatus.FAILED
                delivery.next_attempt_at = None
            else:
                delivery.status = DeliveryStatus.RETRYING
                delivery.next_attempt_at = now + timedelta(seconds=delay)
                at = None if delay <= 0 else delivery.next_attempt_at
                queueing.enqueue_on_commit(delivery.pk, delivery.attempts, at=at)
            if subscription is not None:
                _count_failure(subscription, now)
        delivery.save(
            update_fields=[
                "status",
                "next_attempt_at",
                "delivered_at",
                "last_error",
                "response_status",
                "response_body",
                "duration_ms",
            ]
        )
    return delivery.status


def _count_failure(subscription: WebhookSubscription, now: datetime) -> None:
    if subscription.failing_since is None:
        subscription.failing_since = now
    subscription.consecutive_failures += 1
    fields = ["failing_since", "consecutive_failures", "updated_at"]
    failing_for = (now - subscription.failing_since).total_seconds()
    if subscription.is_active and failing_for >= settings.WEBHOOK_DISABLE_AFTER:
        days = settings.WEBHOOK_DISABLE_AFTER / 86400
        reason = f"Every delivery failed for {days:g} days ({subscription.consecutive_failures} consecutive failures)."
        _disable(subscription, now, reason, save=False)
        fields += ["is_active", "disabled_at", "disabled_reason"]
    subscription.save(update_fields=fields)


def _disable(subscription: WebhookSubscription, now: datetime, reason: str, *, save: bool = True) -> None:
    if not subscription.is_active:
        return
    subscription.is_active = False
    subscription.disabled_at = now
    subscription.disabled_reason = reason
    logger.warning("webhook subscription %s disabled: %s", subscription.pk, reason)
    if save:
        subscription.save(update_fields=["is_active", "disabled_at", "disabled_reason", "updated_at"])
