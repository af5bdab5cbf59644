"""Sending deliveries: in batches, each attempt sent by one worker only, retried on a schedule.

The relay of the transactional outbox. The unit of work is "deliver what is due" (``deliver_due``,
woken by kicks, ``webhooks/queueing.py``):

1. **Claim**: one statement takes up to ``BATCH`` due open deliveries (``FOR UPDATE SKIP LOCKED``
   in its subquery, so two workers never take the same row; first attempts before retries, in the
   order of the due index, so it reads only what it takes), increments their ``attempts`` (the
   fencing token, as for jobs) and pushes ``next_attempt_at`` past the longest a batch may run (a
   lease), in autocommit: no transaction stays open while sending. A full batch makes sure another
   kick is waiting (a continuation), so a backlog drains with every worker.
2. **Secrets**: those of all the batch's subscriptions in one query, the organization's default
   secret (a job's own ``webhook_url``) in one more. A disabled subscription's deliveries fail
   unsent.
3. **Send**: each message is signed and POSTed through the SSRF guard (checked again every time),
   on a connection kept per checked address. No POST starts past the batch's send budget: the
   rest are released, due again at once, and kicked.
4. **Record**: every success in one statement, fenced by each row's claimed ``attempts`` and open
   status (an attempt whose lease ran out and was claimed again is not overwritten), then the
   failure state of their subscriptions cleared in one statement touching only those that have
   some (no row lock on the common path). Failures (rarer, and stateful) are recorded one by one
   as before: retry scheduling, 410, disabling, counting.

A worker that dies mid-batch leaves its rows leased; they fall due again when the lease ends,
and the recovery cron (``webhooks/recovery.py``) kicks a worker for them.

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import reduce
from operator import or_

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from pipeline_project import metrics
from pipeline_project.lib.events import Event, announce
from pipeline_project.lib.ssrf import UnsafeURL, pinned_request
from webhooks import queueing, signing
from webhooks.models import (
    DeliveryStatus,
    OrganizationWebhookSecret,
    SigningSecrets,
    WebhookDelivery,
    WebhookSubscription,
)
from webhooks.queueing import BATCH
from webhooks.services import default_secret

logger = logging.getLogger(__name__)

OPEN = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
RESPONSE_EXCERPT = 2048  # bytes of the receiver's answer kept in ``response_body``
RESPONSE_DRAIN = 65536  # bytes read past the excerpt to keep the connection; a longer answer closes it
RETRY_AFTER_CAP = 86400  # seconds: a receiver cannot park a delivery for longer than a day
JITTER = 0.10
DUE_TOLERANCE = timedelta(seconds=1)  # an RQ scheduler a little ahead of this clock
RECORD_MARGIN = 30  # seconds of a batch's job timeout kept for recording its outcomes
DISABLED = "The subscription is disabled."


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
    """How long a claimed batch keeps its deliveries from falling due again: past the RQ job
    timeout of a batch (``queueing.job_timeout``), by which RQ has stopped it."""
    return timedelta(seconds=queueing.job_timeout() + 30)


def send_budget() -> float:
    """Seconds after its claim during which a batch may start a POST: one started later might not
    end (connect and read timeouts, ~2 x ``WEBHOOK_TIMEOUT``) and be recorded within the job
    timeout. The first POST of a batch is always sent."""
    return queueing.job_timeout() - 2 * settings.WEBHOOK_TIMEOUT - RECORD_MARGIN


# --- Entry points ---------------------------------------------------------------------------------


def deliver_due(*, limit: int = BATCH) -> int:
    """Delivers up to ``limit`` due deliveries (one batch); returns how many it claimed. A full
    batch first makes sure a kick is waiting (a continuation), so the next batch starts on another
    worker meanwhile."""
    claimed = _claim(limit)
    if len(claimed) == limit:
        queueing.kick_unless_waiting()
    _deliver(claimed)
    return len(claimed)


def deliver(delivery_id) -> str | None:
    """One attempt of one due delivery, by the same machinery (tests, tools); returns its status
    afterwards, or None if there was nothing to do (not due, finished, or being sent by another
    worker). Never raises for a receiver's fault."""
    claimed = _claim(1, delivery_id=delivery_id)
    return _deliver(claimed).get(claimed[0].pk) if claimed else None


# --- Services: the writes of delivery rows --------------------------------------------------------


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Sends ``delivery``'s message again (same ``message_id``, same payload) as a new attempt, from
    any status: due now, a worker kicked after commit. ``attempts`` keeps counting; ``delivered_at``
    is cleared until it succeeds again."""
    with transaction.atomic():
        locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        locked.status = DeliveryStatus.PENDING
        locked.next_attempt_at = timezone.now()
        locked.delivered_at = None
        locked.save(update_fields=["status", "next_attempt_at", "delivered_at"])
        queueing.kick_on_commit()
    return locked


_CLAIMED = ("id", "organization_id", "subscription_id", "url", "payload", "message_id", "attempts", "created_at")


def _claim(limit: int, *, delivery_id=None) -> list[WebhookDelivery]:
    """Claims up to ``limit`` due open deliveries in one autocommitted statement: first attempts
    before retries, each the longest due first. That is the order of the ``(status,
    next_attempt_at)`` index, so a claim reads only the rows it takes, however many wait (a
    backlog, or a dead receiver's retries scheduled for later), and during a backlog a failing
    receiver's retries wait behind fresh messages rather than the reverse. Returns them with the
    claimed ``attempts``, in the order they were created (one subscription's events are sent in
    the order they happened). With ``delivery_id``, only that one, also when it was created
    without ``next_attempt_at`` (by hand: every service sets it)."""
    now = timezone.now()
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    due = "next_attempt_at <= %s"
    params = [_datetime(now + attempt_lease()), *OPEN, _datetime(now + DUE_TOLERANCE)]
    if delivery_id is not None:
        due = f"(next_attempt_at IS NULL OR {due}) AND id = %s"
        params.append(WebhookDelivery._meta.pk.get_db_prep_value(delivery_id, connection))
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = (
        f"UPDATE {table} SET attempts = attempts + 1, next_attempt_at = %s"
        f" WHERE id IN (SELECT id FROM {table} WHERE status IN (%s, %s) AND {due}"
        f" ORDER BY status, next_attempt_at LIMIT %s{lock})"
        f" RETURNING {', '.join(_CLAIMED)}"
    )
    claimed = WebhookDelivery.objects.raw(sql, [*params, limit])
    return sorted(claimed, key=lambda delivery: (delivery.created_at, delivery.pk))


def _deliver(claimed: list[WebhookDelivery]) -> dict[object, str | None]:
    """Sends and records a claimed batch; returns each delivery's status (None: its claim was lost)."""
    if not claimed:
        return {}
    secrets = _batch_secrets(claimed)
    disabled = [delivery for delivery in claimed if delivery.pk in secrets and secrets[delivery.pk] is None]
    statuses = _fail_disabled(disabled)
    sent, unsent = _send_all([delivery for delivery in claimed if secrets.get(delivery.pk)], secrets)
    _release(unsent)
    statuses.update(_record_successes([(delivery, result) for delivery, result in sent if result.ok]))
    statuses.update(_record_failures([(delivery, result) for delivery, result in sent if not result.ok]))
    unsendable = {delivery.pk for delivery in disabled}  # failed unsent: their subscription is disabled
    metrics.webhook_deliveries("disabled" if pk in unsendable else status or "lost" for pk, status in statuses.items())
    return statuses


def _batch_secrets(claimed: list[WebhookDelivery]) -> dict[object, list[str] | None]:
    """Each claimed delivery's signing secrets, read for the whole batch at once: its subscription's
    (None when that is disabled), else its organization's default secret. A delivery whose
    subscription was deleted meanwhile (its deliveries with it) is left out."""
    subscription_ids = {delivery.subscription_id for delivery in claimed} - {None}
    subscriptions = {}
    if subscription_ids:
        fields = ("id", "is_active", "secret", "previous_secret", "previous_secret_expires_at")
        subscriptions = {s.pk: s for s in WebhookSubscription.objects.filter(pk__in=subscription_ids).only(*fields)}
    organization_ids = {delivery.organization_id for delivery in claimed if delivery.subscription_id is None}
    defaults = {}
    if organization_ids:
        holders = OrganizationWebhookSecret.objects.filter(organization_id__in=organization_ids)
        defaults = {holder.organization_id: holder for holder in holders}
    secrets = {}
    for delivery in claimed:
        if delivery.subscription_id is None:
            holder = defaults.get(delivery.organization_id)
            if holder is None:  # the organization's first message to a job's own URL
                holder = defaults[delivery.organization_id] = default_secret(organization=delivery.organization)
            secrets[delivery.pk] = signing_secrets(holder)
        elif (subscription := subscriptions.get(delivery.subscription_id)) is not None:
            secrets[delivery.pk] = signing_secrets(subscription) if subscription.is_active else None
    return secrets


def _fenced(deliveries: list[WebhookDelivery]) -> Q:
    """Each of ``deliveries`` still open and still at the ``attempts`` it was claimed with."""
    return reduce(or_, (Q(pk=delivery.pk, attempts=delivery.attempts) for delivery in deliveries)) & Q(status__in=OPEN)


def _fail_disabled(deliveries: list[WebhookDelivery]) -> dict[object, str]:
    """Fails, unsent, the deliveries of disabled subscriptions; their claim is not an attempt."""
    if not deliveries:
        return {}
    WebhookDelivery.objects.filter(_fenced(deliveries)).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=DISABLED, attempts=F("attempts") - 1
    )
    return dict.fromkeys((delivery.pk for delivery in deliveries), DeliveryStatus.FAILED)


def _release(deliveries: list[WebhookDelivery]) -> None:
    """Gives back deliveries a batch had no time left to send: unclaimed, due now, and a worker
    kicked for them."""
    if not deliveries:
        return
    WebhookDelivery.objects.filter(_fenced(deliveries)).update(
        attempts=F("attempts") - 1, next_attempt_at=timezone.now()
    )
    queueing.kick(queueing.kicks_for(len(deliveries)))


# --- Sending ----------------------------------------------------------------------------------------


@dataclass
class _Result:
    status: int | None = None
    body: str = ""
    error: str = ""
    retry_after: float | None = None
    unsafe: bool = False
    duration_ms: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _send_all(deliveries: list[WebhookDelivery], secrets: dict) -> tuple[list[tuple[WebhookDelivery, _Result]], list]:
    """Sends ``deliveries`` one after the other within the send budget; returns ``(delivery,
    result)`` for each sent and the deliveries left unsent."""
    deadline = time.monotonic() + send_budget()
    sent = []
    for index, delivery in enumerate(deliveries):
        if sent and time.monotonic() > deadline:
            logger.warning("webhook batch out of time: %s deliveries released", len(deliveries) - index)
            return sent, deliveries[index:]
        sent.append((delivery, _send(delivery, secrets[delivery.pk])))
    return sent, []


def _send(delivery: WebhookDelivery, secrets: list[str]) -> _Result:
    result = _Result()
    body = message_body(delivery.payload)
    headers = signing.headers(secrets, delivery.message_id, int(time.time()), body)
    started = time.monotonic()
    try:
        response = pinned_request("POST", delivery.url, timeout=settings.WEBHOOK_TIMEOUT, body=body, headers=headers,
                                  reuse=True)  # fmt: skip
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
            response.read(RESPONSE_DRAIN)  # a short answer read to its end: its connection carries the next POST
        finally:
            if not response.closed:  # a long answer, or an error midway: the connection is not reused
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


# --- Recording ----------------------------------------------------------------------------------------


def _record_successes(sent: list[tuple[WebhookDelivery, _Result]]) -> dict[object, str | None]:
    """Records every success of a batch in one statement (fenced per row), then clears the failure
    state of their subscriptions in one more; returns each delivery's status (None: claim lost)."""
    if not sent:
        return {}
    now = timezone.now()
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    pk = WebhookDelivery._meta.pk
    rows, params = [], []
    for delivery, result in sent:
        rows.append("(%s, %s, %s, %s, %s)")
        params += [pk.get_db_prep_value(delivery.pk, connection), delivery.attempts, result.status, result.body,
                   result.duration_ms]  # fmt: skip
    sql = (
        f"WITH outcome (id, attempts, response_status, response_body, duration_ms) AS (VALUES {', '.join(rows)})"
        f" UPDATE {table} SET status = %s, delivered_at = %s, next_attempt_at = NULL, last_error = '',"
        " response_status = outcome.response_status, response_body = outcome.response_body,"
        " duration_ms = outcome.duration_ms"
        f" FROM outcome WHERE {table}.id = outcome.id AND {table}.attempts = outcome.attempts"
        f" AND {table}.status IN (%s, %s) RETURNING {table}.id, {table}.subscription_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, DeliveryStatus.SUCCEEDED, _datetime(now), *OPEN])
        recorded = cursor.fetchall()
    ids = {pk.to_python(delivery_id) for delivery_id, _ in recorded}
    subscription_ids = {subscription_id for _, subscription_id in recorded} - {None}
    if subscription_ids:
        WebhookSubscription.objects.filter(pk__in=subscription_ids).filter(
            Q(failing_since__isnull=False) | Q(consecutive_failures__gt=0)
        ).update(failing_since=None, consecutive_failures=0, updated_at=now)
    statuses = {}
    for delivery, _ in sent:
        if delivery.pk not in ids:
            logger.warning("webhook delivery %s: attempt %s lost its claim", delivery.pk, delivery.attempts)
        statuses[delivery.pk] = DeliveryStatus.SUCCEEDED if delivery.pk in ids else None
    return statuses


def _record_failures(sent: list[tuple[WebhookDelivery, _Result]]) -> dict[object, str | None]:
    """Records each failure of a batch (``_record``), then wakes a worker at each retry's time."""
    statuses, retries = {}, []
    for delivery, result in sent:
        recorded = _record(delivery, result)
        statuses[delivery.pk] = recorded.status if recorded else None
        if recorded is not None and recorded.status == DeliveryStatus.RETRYING:
            retries.append(recorded.next_attempt_at)
    queueing.kick_at(retries)
    return statuses


def _record(claimed: WebhookDelivery, result: _Result) -> WebhookDelivery | None:
    """Records a failed attempt: retry scheduled (the caller kicks a worker for it), or the
    delivery failed; 410 and long runs of failures disable the subscription. None: the claim was lost."""
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
        if subscription is not None:
            _count_failure(subscription, now)
        delivery.save(
            update_fields=["status", "next_attempt_at", "last_error", "response_status", "response_body", "duration_ms"]
        )
    return delivery


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
    details = {"reason": reason, "url": subscription.url}
    announce([Event(type="webhook.disabled", organization_id=subscription.organization_id,
                    resource_id=str(subscription.pk), details=details)])  # fmt: skip
    if save:
        subscription.save(update_fields=["is_active", "disabled_at", "disabled_reason", "updated_at"])


def _datetime(value: datetime):
    """``value`` as the database driver takes it in hand-written SQL (SQLite stores text)."""
    return connection.ops.adapt_datetimefield_value(value)
