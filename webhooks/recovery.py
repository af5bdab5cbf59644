"""No committed delivery is ever lost: when open deliveries have been due for longer than
``GRACE`` and nobody took them (a process that died between commit and kick, a Redis flush or
restart, a kick lost to an outage, a worker killed mid-batch whose lease ran out), workers are
kicked for them. Idempotent: a kick only says "deliver what is due"; which rows are sent is
decided by the claim (``webhooks/delivery.py``), so extra kicks send nothing twice."""

import logging
from datetime import timedelta

from django.utils import timezone
from redis.exceptions import RedisError

from webhooks import queueing
from webhooks.delivery import OPEN
from webhooks.models import WebhookDelivery
from webhooks.queueing import BATCH

logger = logging.getLogger(__name__)

GRACE = timedelta(seconds=30)  # leave just-due deliveries to their own kick (after commit, or scheduled)
MAX_KICKS = 20  # per run (the cron runs every 10 s): 1,000 deliveries' worth; full batches kick their continuations


def kick_overdue_deliveries(*, grace: timedelta = GRACE) -> int:
    """Kicks workers for the open deliveries due for more than ``grace`` (one batch's worth each, at
    most ``MAX_KICKS``, less the kicks already waiting on the queue); returns how many it kicked.
    One bounded count on the due index, and two Redis round trips."""
    cutoff = timezone.now() - grace
    overdue = (
        WebhookDelivery.objects.filter(status__in=OPEN, next_attempt_at__lt=cutoff)
        .order_by()[: MAX_KICKS * BATCH]
        .count()
    )
    if not overdue:
        return 0
    try:
        kicks = min(queueing.kicks_for(overdue), MAX_KICKS) - queueing.waiting()
    except RedisError:
        logger.warning("webhook delivery recovery stopped: Redis unavailable", exc_info=True)
        return 0
    queueing.kick(kicks)
    return max(kicks, 0)
