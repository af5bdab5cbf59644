"""Waking workers to deliver what is due. PostgreSQL holds the deliveries (the outbox); an RQ job
on the ``webhooks`` queue carries no delivery at all: it is a *kick*, "deliver what is due"
(``webhooks.tasks.deliver_due``), and the worker claims due rows itself, a batch at a time. So a
kick lost, duplicated or late loses nothing and sends nothing twice: the recovery cron kicks
again for rows left due too long.

Kicks have random RQ job ids (RQ never confuses one with a finished one) and several go in one
Redis round trip. A retry at time T is a kick scheduled at T (RQ's scheduler: workers run with
``--with-scheduler``)."""

import logging
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Queue

from pipeline_project.lib.redis import get_redis

logger = logging.getLogger(__name__)

QUEUE = "webhooks"
DELIVER_DUE = "webhooks.tasks.deliver_due"  # the worker's entry point
BATCH = 50  # deliveries one kick claims at most


def job_timeout() -> int:
    """Seconds RQ lets a batch run before it stops it: room for a few slow receivers in a row
    (``webhooks.delivery`` stops starting POSTs well before)."""
    return settings.WEBHOOK_TIMEOUT * 4 + 60


def _queue() -> Queue:
    return _cached_queue(get_redis(), job_timeout())


@lru_cache(maxsize=4)
def _cached_queue(connection, default_timeout: int) -> Queue:  # kept: RQ asks the server version once per Queue
    return Queue(QUEUE, connection=connection, default_timeout=default_timeout)


def kicks_for(deliveries: int) -> int:
    """Kicks that let ``deliveries`` new rows be sent by as many workers as there are batches."""
    return max(1, math.ceil(deliveries / BATCH))


def kick(count: int = 1) -> None:
    """Enqueues ``count`` deliver-what-is-due jobs, in one Redis round trip. With Redis down the
    rows stay due in the database, and the recovery cron kicks for them later."""
    _send(count, [])


def kick_unless_waiting() -> None:
    """A kick, unless one is waiting already (it will take the next batch): how a full batch keeps
    a backlog flowing, one kick ahead of the workers rather than one more per batch."""
    try:
        if waiting():
            return
    except RedisError:
        pass  # kick() logs it
    kick()


def kick_on_commit(count: int = 1) -> None:
    """``kick(count)`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: kick(count))


def kick_at(times: Iterable[datetime]) -> None:
    """A kick at each of ``times``, rounded up to the second (at most one per second; a time
    already here: a kick now), all in one Redis round trip: how retries are woken."""
    now = timezone.now()
    times = list(times)
    later = sorted({math.ceil(when.timestamp()) for when in times if when > now})
    _send(int(any(when <= now for when in times)), [datetime.fromtimestamp(second, tz=UTC) for second in later])


def _send(now: int, later: list[datetime]) -> None:
    if not now and not later:
        return
    try:
        with get_redis().pipeline() as pipe:
            for _ in range(now):
                _queue().enqueue_call(DELIVER_DUE, pipeline=pipe)
            for at in later:
                _queue().enqueue_at(at, DELIVER_DUE, pipeline=pipe)
            pipe.execute()
    except RedisError:
        logger.warning("webhook deliveries stay due in the database: Redis unavailable", exc_info=True)


def waiting() -> int:
    """Kicks queued and not started yet. Raises ``RedisError`` when Redis is down."""
    return _queue().count
