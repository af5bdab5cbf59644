"""No committed delivery is ever lost: due deliveries whose RQ job Redis no longer holds alive
(a process that died between commit and enqueue, a Redis flush or restart, an enqueue lost to an
outage, a worker killed mid-attempt whose lease ran out) are enqueued again. Idempotent: sending
is decided by the delivery row (``webhooks/delivery.py`` claims it), not by the RQ message."""

import logging
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from pipeline_project.lib.redis import rq_job_alive
from webhooks import queueing
from webhooks.delivery import OPEN
from webhooks.models import WebhookDelivery

logger = logging.getLogger(__name__)

GRACE = timedelta(seconds=30)  # leave just-due deliveries to their after-commit or scheduled enqueue
BATCH = 1000  # per run; the cron runs every 10 s


def reenqueue_due_deliveries(*, grace: timedelta = GRACE) -> int:
    """Enqueues again every open delivery due for more than ``grace`` with no live RQ job; returns how many."""
    cutoff = timezone.now() - grace
    due = (
        WebhookDelivery.objects.filter(status__in=OPEN)
        .filter(Q(next_attempt_at__lt=cutoff) | Q(next_attempt_at__isnull=True, created_at__lt=cutoff))
        .order_by("next_attempt_at")
        .values_list("pk", "attempts")[:BATCH]
    )
    lost = []
    for delivery_id, attempts in due:
        try:
            if not rq_job_alive(queueing.rq_job_id(delivery_id, attempts)):
                lost.append((delivery_id, attempts))
        except RedisError:
            logger.warning("webhook delivery recovery stopped: Redis unavailable", exc_info=True)
            return 0
    if lost:
        queueing.enqueue_many(lost, again=True)
    return len(lost)
